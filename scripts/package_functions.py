"""Package each Cloud Function as a deployable zip: its main.py, its requirements.txt and a copy of
the shared package (src/retail_pipeline), so `import retail_pipeline` works in the cloud as it
does locally. Nothing else under src/ goes in: the bench harness (src/retail_bench) stays out.

    python scripts/package_functions.py [--out build/functions]

Zips are deterministic (sorted entries, fixed timestamps): the same sources give the same bytes,
so Terraform (which names the uploaded object by the zip's MD5) redeploys a function only when
its bundle changed.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  #: earliest timestamp a zip entry can carry
REQUIRED_FILES = ("main.py", "requirements.txt")


def bundle_entries(function_dir: Path, package_dir: Path) -> list[tuple[str, Path]]:
    """(name in zip, file on disk) for one function: its own files, then the shared package."""
    missing = [name for name in REQUIRED_FILES if not (function_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{function_dir} lacks {', '.join(missing)}")
    if not any(package_dir.glob("*.py")):
        raise FileNotFoundError(f"{package_dir} holds no Python modules")
    entries = [(name, function_dir / name) for name in REQUIRED_FILES]
    for path in sorted(package_dir.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo"):
            entries.append((f"{package_dir.name}/{path.relative_to(package_dir).as_posix()}", path))
    return entries


def write_zip(entries: list[tuple[str, Path]], out: Path) -> None:
    """Write the entries into a deterministic zip at OUT (atomically replaced)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, path in entries:
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, path.read_bytes())
    tmp.replace(out)


def package_functions(functions_root: Path, package_dir: Path, out_dir: Path) -> dict[str, Path]:
    """Build one zip per function folder (a folder with a main.py) under FUNCTIONS_ROOT."""
    function_dirs = sorted(p.parent for p in functions_root.glob("*/main.py"))
    if not function_dirs:
        raise FileNotFoundError(f"no function folders (*/main.py) under {functions_root}")
    built = {}
    for function_dir in function_dirs:
        out = out_dir / f"{function_dir.name}.zip"
        write_zip(bundle_entries(function_dir, package_dir), out)
        built[function_dir.name] = out
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--functions", type=Path, default=REPO / "functions", help="folder of function folders")
    parser.add_argument("--package", type=Path, default=REPO / "src" / "retail_pipeline", help="shared package")
    parser.add_argument("--out", type=Path, default=REPO / "build" / "functions", help="where to write the zips")
    args = parser.parse_args(argv)
    try:
        built = package_functions(args.functions, args.package, args.out)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, path in built.items():
        digest = hashlib.md5(path.read_bytes()).hexdigest()  # what Terraform's filemd5() names the object by
        print(f"{name}: {path} ({path.stat().st_size:,} bytes, md5 {digest})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
