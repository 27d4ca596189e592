"""The bench's runs and its report: interleaved rounds of ingest and the plain reads, end to end.

Method (docs/benchmarks.md): every variant runs as its own process, in interleaved rounds
(ingest, plain read, eager read, pandas, CLI start-up, then again), so a noisy neighbour on a
shared machine hits every variant alike. The report holds min / median / max of wall seconds,
CPU seconds and peak RSS per variant, the ratios of the medians to the plain fastexcel read
(baseline a, benchmarks/plain_fastexcel.py) and the same ratios within each round. Baseline b
(benchmarks/pandas_openpyxl.py) is pandas.read_excel with the original project's cleaning.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .measure import machine, measure, summarize
from .runs import BenchError, Say, checked, exe, run_end_to_end, to_stderr
from .scale import run_scale

REPO = Path(__file__).resolve().parents[2]
DEFAULT_BASELINES = REPO / "benchmarks"
DEFAULT_WORKBOOK = REPO.parent / "shared" / "data" / "online_retail_reference.xlsx"
BASELINE_SCRIPTS = ("plain_fastexcel.py", "pandas_openpyxl.py", "concat_csv.py")
FULL_SIZE_ROWS = 541_909
TARGETS = {"ingest_wall": 1.3, "ingest_peak": 1.25, "e2e_seconds": 30.0, "scale_wall": 11.0, "scale_csv_peak": 1.5}
VARIANTS = ("ingest", "fastexcel", "fastexcel-eager", "pandas-openpyxl", "cli-startup")


@dataclass
class BenchPlan:
    """What one `bench` invocation runs."""

    workbook: Path = DEFAULT_WORKBOOK
    runs: int = 5  #: interleaved rounds of the reader variants (0: none)
    pandas_runs: int = 3  #: rounds (of the first `runs`) that also run the pandas baseline
    e2e_runs: int = 1  #: end-to-end `retail-pipeline run` timings
    scale: int = 0  #: generated datasets for the scale procedure (0: none)
    scale_rows: int = FULL_SIZE_ROWS  #: rows of each generated dataset
    work: Path = Path(".retail/bench/scale")  #: folder for the generated scale datasets
    baselines: Path = DEFAULT_BASELINES  #: folder of the baseline scripts
    timeout: float = 1800  #: seconds allowed per process
    variants: tuple[str, ...] = field(default=VARIANTS)  #: reader variants to run (ingest and fastexcel always)


def variants(workbook: Path, baselines: Path, scratch: Path, home: Path) -> dict[str, list[str]]:
    py = sys.executable
    return {
        "ingest": [exe(), "--home", str(home), "ingest", str(workbook), "--lake", str(scratch / "lake")],
        "fastexcel": [py, str(baselines / "plain_fastexcel.py"), str(workbook)],
        "fastexcel-eager": [py, str(baselines / "plain_fastexcel.py"), str(workbook), "--eager"],
        "pandas-openpyxl": [py, str(baselines / "pandas_openpyxl.py"), str(workbook), str(scratch / "pandas-out")],
        "cli-startup": [exe(), "--home", str(home), "--help"],
    }


def run_readers(
    workbook: Path,
    baselines: Path,
    runs: int,
    pandas_runs: int,
    timeout: float,
    say: Say = to_stderr,
    only: tuple[str, ...] = VARIANTS,
) -> dict[str, dict[str, list[float]]]:
    """Interleaved rounds of the variants; {variant: {"wall": [...], "cpu": [...], "peak_mb": [...]}}."""
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        scratch = Path(tmp)
        home = scratch / "home"
        chosen = {name: argv for name, argv in variants(workbook, baselines, scratch, home).items() if name in only}
        for round_no in range(max(runs, pandas_runs)):
            for name, argv in chosen.items():
                wanted = pandas_runs if name == "pandas-openpyxl" else runs
                if round_no >= wanted:
                    continue
                for leftover in ("lake", "lake.meta", "pandas-out"):
                    shutil.rmtree(scratch / leftover, ignore_errors=True)
                log = scratch / f"{name}.log"
                m = checked(name, measure(argv, timeout=timeout, log=log), log)
                entry = results.setdefault(name, {"wall": [], "cpu": [], "peak_mb": []})
                entry["wall"].append(m.wall)
                entry["cpu"].append(m.cpu)
                entry["peak_mb"].append(m.peak_mb)
                say(f"  round {round_no + 1}: {name:<16} {m.wall:7.2f} s wall {m.cpu:7.2f} s CPU {m.peak_mb:7.1f} MB")
    return results


def readers_report(raw: dict[str, dict[str, list[float]]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per variant: summaries, ratios of medians to fastexcel and ratios within each round; and the checks."""
    base = raw["fastexcel"]
    medians = {key: statistics.median(base[key]) for key in ("wall", "cpu", "peak_mb")}
    readers: dict[str, Any] = {}
    for name, r in raw.items():
        readers[name] = {
            "wall": summarize(r["wall"]),
            "cpu": summarize(r["cpu"]),
            "peak_mb": summarize(r["peak_mb"]),
            "wall_ratio": round(statistics.median(r["wall"]) / medians["wall"], 3),
            "cpu_ratio": round(statistics.median(r["cpu"]) / medians["cpu"], 3),
            "peak_ratio": round(statistics.median(r["peak_mb"]) / medians["peak_mb"], 3),
            # same-round ratios: a noisy neighbour slows both processes of a round alike
            "wall_ratio_by_round": [round(w / b, 3) for w, b in zip(r["wall"], base["wall"])],
            "cpu_ratio_by_round": [round(c / b, 3) for c, b in zip(r["cpu"], base["cpu"])],
            "raw": r,
        }
    ingest = readers["ingest"]
    checks = {
        "ingest wall / fastexcel wall (medians)": (ingest["wall_ratio"], TARGETS["ingest_wall"]),
        "ingest CPU / fastexcel CPU (medians)": (ingest["cpu_ratio"], TARGETS["ingest_wall"]),
        "ingest peak / fastexcel peak (medians)": (ingest["peak_ratio"], TARGETS["ingest_peak"]),
    }
    return readers, {k: {"value": v, "target": t, "ok": v <= t} for k, (v, t) in checks.items()}


def run_bench(plan: BenchPlan, say: Say = to_stderr) -> dict[str, Any]:
    """Every run the plan asks for; the report (JSON-ready)."""
    if not plan.workbook.exists():
        raise BenchError(f"the workbook is missing: {plan.workbook}")
    for script in BASELINE_SCRIPTS:
        if not (plan.baselines / script).exists():
            raise BenchError(f"baseline script missing: {plan.baselines / script}")
    unknown = sorted(set(plan.variants) - set(VARIANTS))
    if unknown or not {"ingest", "fastexcel"} <= set(plan.variants):
        raise BenchError(
            f"variants must include ingest and fastexcel, out of {', '.join(VARIANTS)}"
            + (f" (unknown: {', '.join(unknown)})" if unknown else "")
        )
    started = datetime.now().astimezone()
    report: dict[str, Any] = {
        "date": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "workbook": str(plan.workbook.resolve()),
        "targets": TARGETS,
    }
    if plan.runs:
        pandas_runs = min(plan.pandas_runs, plan.runs) if "pandas-openpyxl" in plan.variants else 0
        say(f"readers: {plan.runs} interleaved rounds of {', '.join(plan.variants)} (pandas in {pandas_runs})")
        raw = run_readers(plan.workbook, plan.baselines, plan.runs, pandas_runs, plan.timeout, say, plan.variants)
        report["readers"], report["checks"] = readers_report(raw)
    report["end_to_end"] = []
    for i in range(plan.e2e_runs):
        say(f"run end to end #{i + 1}")
        report["end_to_end"].append(run_end_to_end([plan.workbook], plan.timeout))
    if plan.scale:
        say(f"scale x{plan.scale}")
        report["scale"] = run_scale(plan.work, plan.scale, plan.scale_rows, plan.baselines, plan.timeout, say)
    report["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    report["seconds"] = round((datetime.now().astimezone() - started).total_seconds(), 1)
    return report


def write_report(report: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
