"""One measured run of the project's CLI: its process, its failure, the figures it prints.

Shared by the reader rounds (harness.py) and the 10x procedure (scale.py).
"""

from __future__ import annotations

import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .measure import Measure, measure

Say = Callable[[str], None]


class BenchError(Exception):
    """The bench cannot report: an input is missing or a measured process failed."""


def to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def checked(name: str, m: Measure, log: Path) -> Measure:
    """`m`, or BenchError with the end of the process's output when it failed."""
    if m.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise BenchError(f"{name} exited with {m.returncode}:\n{tail}")
    return m


def exe() -> str:
    """The `retail-pipeline` console script of the running Python."""
    return str(Path(sys.executable).parent / "retail-pipeline")


def stage_seconds(output: str) -> dict[str, float]:
    """The per-stage seconds of `retail-pipeline run`'s summary line ('seconds: ingest 3.2, ...')."""
    line = next((ln for ln in output.splitlines() if ln.startswith("seconds:")), "")
    return {k: float(v) for k, v in re.findall(r"([A-Za-z_]+) ([0-9.]+)", line.split(":", 1)[-1])}


def run_end_to_end(files: list[Path], timeout: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    """`retail-pipeline run FILES...` on a fresh home: wall, peak RSS, per-stage seconds, summary lines."""
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        log = Path(tmp) / "run.log"
        argv = [exe(), "--home", str(Path(tmp) / "home"), "run", *map(str, files)]
        m = checked("run", measure(argv, timeout=timeout, log=log, env=env), log)
        output = log.read_text(errors="replace")
    summary = [ln for ln in output.splitlines() if not ln.startswith("  ")]
    return {**asdict(m), "stages": stage_seconds(output), "summary": summary[-8:]}


def run_ingest_once(source: Path, timeout: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    """`retail-pipeline ingest SOURCE --lake …` once: wall and peak RSS."""
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        log = Path(tmp) / "ingest.log"
        argv = [exe(), "--home", str(Path(tmp) / "home"), "ingest", str(source), "--lake", str(Path(tmp) / "lake")]
        m = checked("ingest", measure(argv, timeout=timeout, log=log, env=env), log)
        last = log.read_text(errors="replace").strip().splitlines()[-1:]
    return {**asdict(m), "result": last[0] if last else ""}
