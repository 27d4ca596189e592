"""Concatenate CSV files with the same header into one (the header written once), streaming.

Builds the 10x-scale input of `retail-pipeline bench --scale 10`: the rows of ten generated
datasets as one CSV file.

    python benchmarks/concat_csv.py OUT.csv IN1.csv IN2.csv ...
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def concat(out: Path, inputs: list[Path]) -> int:
    """Write `inputs` into `out`, header once; returns the number of input files."""
    header: bytes | None = None
    tmp = out.with_name(out.name + ".part")
    with open(tmp, "wb") as sink:
        for path in inputs:
            with open(path, "rb") as src:
                first = src.readline()
                if header is None:
                    header = first
                    sink.write(first)
                elif first != header:
                    raise ValueError(f"{path}: header {first!r} differs from {header!r}")
                shutil.copyfileobj(src, sink, 1 << 20)
                if src.tell() > len(first):
                    src.seek(-1, 2)
                    if src.read(1) != b"\n":  # a last line without its newline must not merge with the next file
                        sink.write(b"\n")
    tmp.replace(out)
    return len(inputs)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    count = concat(Path(argv[0]), [Path(a) for a in argv[1:]])
    print(f"wrote {argv[0]} from {count} files")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
