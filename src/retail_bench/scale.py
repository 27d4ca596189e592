"""The 10x procedure: ten generated workbooks of different data, and the same rows as one CSV.

Runs: `run` on one workbook (1x), on the ten workbooks, and on the one CSV; `ingest` alone on
one workbook and on the CSV for their peak RSS. Generated files are kept in the work folder for
reuse.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from .runs import Say, exe, run_end_to_end, run_ingest_once, to_stderr


def prepare_scale(
    work: Path, scale: int, rows: int, baselines: Path, timeout: float, say: Say = to_stderr
) -> dict[str, Any]:
    """`scale` generated workbooks of different data, their CSVs, and the CSVs as one file."""
    work.mkdir(parents=True, exist_ok=True)
    books: list[Path] = []
    csvs: list[Path] = []
    for seed in range(1, scale + 1):
        for fmt, bucket in (("xlsx", books), ("csv", csvs)):
            path = work / f"retail_{rows}_seed{seed}.{fmt}"
            if not path.exists():
                say(f"  generating {path.name}")
                subprocess.run(
                    [exe(), "sample", str(path), "--rows", str(rows), "--seed", str(seed), "--format", fmt],
                    check=True,
                    timeout=timeout,
                    stdout=subprocess.DEVNULL,
                )
            bucket.append(path)
    big = work / f"retail_{rows}_x{scale}.csv"
    if not big.exists():
        say(f"  concatenating {len(csvs)} CSVs into {big.name}")
        subprocess.run(
            [sys.executable, str(baselines / "concat_csv.py"), str(big), *map(str, csvs)],
            check=True,
            timeout=timeout,
            stdout=subprocess.DEVNULL,
        )
    return {"workbooks": books, "csv": big}


def run_scale(
    work: Path, scale: int, rows: int, baselines: Path, timeout: float, say: Say = to_stderr
) -> dict[str, Any]:
    """The 10x procedure: 1x run, scale-x run of the workbooks and of the one CSV, ingest peaks."""
    inputs = prepare_scale(work, scale, rows, baselines, timeout, say)
    books, big = inputs["workbooks"], inputs["csv"]
    # the CSV is far beyond the default 200 MB landing-object limit: raise it for these runs
    env = {**os.environ, "RETAIL_PIPELINE_MAX_OBJECT_BYTES": str(max(big.stat().st_size * 2, 200 * 1024**2))}
    out: dict[str, Any] = {"scale": scale, "rows_per_dataset": rows, "csv_bytes": big.stat().st_size}
    say("  ingest of one workbook (1x)")
    out["ingest_1x_workbook"] = run_ingest_once(books[0], timeout, env)
    say(f"  ingest of the {scale}x CSV")
    out["ingest_csv"] = run_ingest_once(big, timeout, env)
    say("  run on one workbook (1x)")
    out["run_1x"] = run_end_to_end(books[:1], timeout, env)
    say(f"  run on {scale} workbooks")
    out["run_workbooks"] = run_end_to_end(books, timeout, env)
    say(f"  run on the {scale}x CSV")
    out["run_csv"] = run_end_to_end([big], timeout, env)
    one = out["run_1x"]["wall"]
    out["ratios"] = {
        "run_workbooks_wall": round(out["run_workbooks"]["wall"] / one, 2),
        "run_csv_wall": round(out["run_csv"]["wall"] / one, 2),
        "ingest_csv_peak": round(out["ingest_csv"]["peak_mb"] / out["ingest_1x_workbook"]["peak_mb"], 2),
    }
    return out
