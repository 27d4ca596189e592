"""`retail-pipeline bench`: the project's ingest against the plain reads it must stay close to.

Method (docs/benchmarks.md): every variant runs as its own process, in interleaved rounds
(ingest, plain read, eager read, pandas, CLI start-up, then again), so a noisy neighbour on a
shared machine hits every variant alike. Wall time is measured from fork to exit; peak RSS is
the child's own ``ru_maxrss`` from ``os.wait4``, the child forked from a small launcher process. The table shows min / median / max of each and
the ratios of the medians to the plain fastexcel read (baseline a, benchmarks/plain_fastexcel.py).
Baseline b (benchmarks/pandas_openpyxl.py) is pandas.read_excel with the original project's
cleaning. ``--e2e-runs`` also times ``retail-pipeline run`` end to end (embedded chain, dbt), and
``--scale 10`` runs the 10x procedure (ten generated workbooks and the same rows as one CSV).
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import click

from .config import Settings

REPO = Path(__file__).resolve().parents[2]
DEFAULT_BASELINES = REPO / "benchmarks"
DEFAULT_WORKBOOK = REPO.parent / "shared" / "data" / "online_retail_reference.xlsx"
FULL_SIZE_ROWS = 541_909
TARGETS = {"ingest_wall": 1.3, "ingest_peak": 1.25, "e2e_seconds": 30.0, "scale_wall": 11.0, "scale_csv_peak": 1.5}


@dataclass
class Measure:
    """One process: wall seconds from fork to exit, CPU seconds, peak RSS in MB, exit code."""

    wall: float
    cpu: float
    peak_mb: float
    returncode: int


#: Runs one command and reports its rusage. Linux charges a child's ru_maxrss with the RSS of the
#: process it was forked from (the pre-exec image), so children are forked from this small
#: launcher, not from the (possibly large) calling process.
LAUNCHER = """
import json, os, sys, time
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - started
with open(sys.argv[1], "w") as out:
    json.dump({"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "maxrss_kb": usage.ru_maxrss,
               "returncode": os.waitstatus_to_exitcode(status)}, out)
"""


def measure(argv: list[str], *, timeout: float, log: Path, env: dict[str, str] | None = None) -> Measure:
    """Run `argv` as a child process (through LAUNCHER); its own rusage gives CPU and peak RSS."""
    import signal

    result_path = log.with_name(log.name + ".rusage.json")
    result_path.unlink(missing_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-S", "-c", LAUNCHER, str(result_path), *argv], stdout=out,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
        killer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
        killer.start()
        try:
            proc.wait()
        finally:
            killer.cancel()
    if not result_path.exists():  # killed at the timeout
        return Measure(round(float(timeout), 3), 0.0, 0.0, proc.returncode or -9)
    r = json.loads(result_path.read_text())
    return Measure(round(r["wall"], 3), round(r["cpu"], 3), round(r["maxrss_kb"] / 1024, 1), r["returncode"])


def _checked(name: str, m: Measure, log: Path) -> Measure:
    if m.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise click.ClickException(f"{name} exited with {m.returncode}:\n{tail}")
    return m


def summarize(values: list[float]) -> dict:
    return {"min": min(values), "median": round(statistics.median(values), 3), "max": max(values), "n": len(values)}


def machine() -> dict:
    """nproc, CPU model, RAM, load average, Python and reader versions."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal"))
    except (OSError, StopIteration, ValueError):
        mem_kb = 0
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for package in ("fastexcel", "pyarrow", "numpy", "pandas", "openpyxl"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return {"nproc": os.cpu_count(), "cpu": cpu or platform.processor(), "ram_gb": round(mem_kb / 1024**2, 1),
            "loadavg": [round(x, 2) for x in os.getloadavg()], "python": platform.python_version(),
            "platform": platform.platform(), "versions": versions}


def _exe() -> str:
    return str(Path(sys.executable).parent / "retail-pipeline")


def _variants(workbook: Path, baselines: Path, scratch: Path, home: Path) -> dict[str, list[str]]:
    py = sys.executable
    return {
        "ingest": [_exe(), "--home", str(home), "ingest", str(workbook), "--lake", str(scratch / "lake")],
        "fastexcel": [py, str(baselines / "plain_fastexcel.py"), str(workbook)],
        "fastexcel-eager": [py, str(baselines / "plain_fastexcel.py"), str(workbook), "--eager"],
        "pandas-openpyxl": [py, str(baselines / "pandas_openpyxl.py"), str(workbook), str(scratch / "pandas-out")],
        "cli-startup": [_exe(), "--home", str(home), "--help"],
    }


def run_readers(workbook: Path, baselines: Path, runs: int, pandas_runs: int, timeout: float,
                say=click.echo) -> dict:
    """Interleaved rounds of every variant; {variant: {"wall": [...], "peak_mb": [...]}}."""
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        scratch = Path(tmp)
        home = scratch / "home"
        variants = _variants(workbook, baselines, scratch, home)
        for round_no in range(max(runs, pandas_runs)):
            for name, argv in variants.items():
                wanted = pandas_runs if name == "pandas-openpyxl" else runs
                if round_no >= wanted:
                    continue
                for leftover in ("lake", "lake.meta", "pandas-out"):
                    shutil.rmtree(scratch / leftover, ignore_errors=True)
                log = scratch / f"{name}.log"
                m = _checked(name, measure(argv, timeout=timeout, log=log), log)
                entry = results.setdefault(name, {"wall": [], "cpu": [], "peak_mb": []})
                entry["wall"].append(m.wall)
                entry["cpu"].append(m.cpu)
                entry["peak_mb"].append(m.peak_mb)
                say(f"  round {round_no + 1}: {name:<16} {m.wall:7.2f} s wall {m.cpu:7.2f} s CPU {m.peak_mb:7.1f} MB")
    return results


def _stage_seconds(output: str) -> dict[str, float]:
    line = next((ln for ln in output.splitlines() if ln.startswith("seconds:")), "")
    return {k: float(v) for k, v in re.findall(r"([A-Za-z_]+) ([0-9.]+)", line.split(":", 1)[-1])}


def run_end_to_end(files: list[Path], timeout: float, env: dict[str, str] | None = None) -> dict:
    """`retail-pipeline run FILES...` on a fresh home: wall, peak RSS, per-stage seconds, summary lines."""
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        log = Path(tmp) / "run.log"
        argv = [_exe(), "--home", str(Path(tmp) / "home"), "run", *map(str, files)]
        m = _checked("run", measure(argv, timeout=timeout, log=log, env=env), log)
        output = log.read_text(errors="replace")
    summary = [ln for ln in output.splitlines() if not ln.startswith("  ")]
    return {**asdict(m), "stages": _stage_seconds(output), "summary": summary[-8:]}


def run_ingest_once(source: Path, timeout: float, env: dict[str, str] | None = None) -> dict:
    """`retail-pipeline ingest SOURCE --lake …` once: wall and peak RSS."""
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        log = Path(tmp) / "ingest.log"
        argv = [_exe(), "--home", str(Path(tmp) / "home"), "ingest", str(source), "--lake", str(Path(tmp) / "lake")]
        m = _checked("ingest", measure(argv, timeout=timeout, log=log, env=env), log)
        last = log.read_text(errors="replace").strip().splitlines()[-1:]
    return {**asdict(m), "result": last[0] if last else ""}


def prepare_scale(work: Path, scale: int, rows: int, baselines: Path, timeout: float, say=click.echo) -> dict:
    """Ten (scale) generated workbooks of different data, their CSVs, and the CSVs as one file."""
    work.mkdir(parents=True, exist_ok=True)
    books, csvs = [], []
    for seed in range(1, scale + 1):
        for fmt, bucket in (("xlsx", books), ("csv", csvs)):
            path = work / f"retail_{rows}_seed{seed}.{fmt}"
            if not path.exists():
                say(f"  generating {path.name}")
                subprocess.run([_exe(), "sample", str(path), "--rows", str(rows), "--seed", str(seed),
                                "--format", fmt], check=True, timeout=timeout, stdout=subprocess.DEVNULL)
            bucket.append(path)
    big = work / f"retail_{rows}_x{scale}.csv"
    if not big.exists():
        say(f"  concatenating {len(csvs)} CSVs into {big.name}")
        subprocess.run([sys.executable, str(baselines / "concat_csv.py"), str(big), *map(str, csvs)], check=True,
                       timeout=timeout, stdout=subprocess.DEVNULL)
    return {"workbooks": books, "csv": big}


def run_scale(work: Path, scale: int, rows: int, baselines: Path, timeout: float, say=click.echo) -> dict:
    """The 10x procedure: 1x run, scale-x run of the workbooks and of the one CSV, ingest peaks."""
    inputs = prepare_scale(work, scale, rows, baselines, timeout, say)
    books, big = inputs["workbooks"], inputs["csv"]
    # the CSV is far beyond the default 200 MB landing-object limit: raise it for these runs
    env = {**os.environ, "RETAIL_PIPELINE_MAX_OBJECT_BYTES": str(max(big.stat().st_size * 2, 200 * 1024**2))}
    out: dict = {"scale": scale, "rows_per_dataset": rows, "csv_bytes": big.stat().st_size}
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


def render(report: dict) -> str:
    """The human-readable table of a bench report."""
    lines = [f"bench {report['date']}  {report['machine']['nproc']} CPUs  {report['machine']['cpu']}  "
             f"{report['machine']['ram_gb']} GB RAM  load {report['machine']['loadavg']}"]
    if report.get("readers"):
        lines.append(f"workbook {report['workbook']}")
        lines.append(f"{'variant':<17}{'runs':>5}  {'wall s min / median / max':>27}  {'CPU s median':>12}  "
                     f"{'peak MB min / median / max':>28}  {'wall/a':>7}  {'peak/a':>7}")
        for name, r in report["readers"].items():
            w, c, p = r["wall"], r["cpu"], r["peak_mb"]
            lines.append(f"{name:<17}{w['n']:>5}  {w['min']:>8.2f} / {w['median']:>6.2f} / {w['max']:>6.2f}  "
                         f"{c['median']:>12.2f}  {p['min']:>9.1f} / {p['median']:>6.1f} / {p['max']:>6.1f}  "
                         f"{r['wall_ratio']:>7.2f}  {r['peak_ratio']:>7.2f}")
        by_round = report["readers"]["ingest"]["wall_ratio_by_round"]
        lines.append(f"ingest/fastexcel wall in the same round: min {min(by_round):.2f} / median "
                     f"{statistics.median(by_round):.2f} / max {max(by_round):.2f}")
        for key, check in report["checks"].items():
            lines.append(f"{key}: {check['value']:.2f} (target <= {check['target']}) "
                         f"{'OK' if check['ok'] else 'MISSED'}")
    for i, e2e in enumerate(report.get("end_to_end", []), 1):
        stages = ", ".join(f"{k} {v:.2f}" for k, v in e2e["stages"].items())
        lines.append(f"run (end to end) #{i}: {e2e['wall']:.2f} s wall, peak {e2e['peak_mb']:.0f} MB; "
                     f"stages: {stages}")
    if report.get("scale"):
        s = report["scale"]
        lines.append(f"scale x{s['scale']} ({s['rows_per_dataset']:,} rows per dataset, CSV {s['csv_bytes']:,} bytes)")
        for key in ("ingest_1x_workbook", "ingest_csv", "run_1x", "run_workbooks", "run_csv"):
            r = s[key]
            lines.append(f"  {key:<20} {r['wall']:8.2f} s  peak {r['peak_mb']:7.1f} MB"
                         + (f"  stages: {', '.join(f'{k} {v:.1f}' for k, v in r['stages'].items())}"
                            if "stages" in r else ""))
        for key, value in s["ratios"].items():
            target = TARGETS["scale_csv_peak"] if key == "ingest_csv_peak" else TARGETS["scale_wall"]
            lines.append(f"  {key}: {value:.2f} (target <= {target}) {'OK' if value <= target else 'MISSED'}")
    return "\n".join(lines)


@click.command()
@click.argument("workbook", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--runs", type=click.IntRange(min=0), default=5, show_default=True,
              help="Rounds of ingest and the fastexcel reads (0: skip the reader comparison).")
@click.option("--pandas-runs", type=click.IntRange(min=0), default=3, show_default=True,
              help="Rounds that also run the pandas baseline (about 36 s each on the reference workbook).")
@click.option("--e2e-runs", type=click.IntRange(min=0), default=1, show_default=True,
              help="End-to-end `retail-pipeline run` timings of WORKBOOK (embedded chain, dbt).")
@click.option("--scale", type=click.IntRange(min=0), default=0,
              help="Also run the scale procedure with this many generated datasets (10 = the 10x check; minutes).")
@click.option("--scale-rows", type=click.IntRange(min=1), default=FULL_SIZE_ROWS, show_default=True,
              help="Rows of each generated dataset for --scale.")
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the generated scale datasets (kept for reuse; default HOME/bench/scale).")
@click.option("--baselines", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=DEFAULT_BASELINES, show_default=True, help="Folder holding the baseline scripts.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="JSON report path (default HOME/bench/bench-<time>.json).")
@click.option("--timeout", type=float, default=1800, show_default=True, help="Seconds allowed per process.")
@click.pass_obj
def bench(settings: Settings, workbook: Path | None, runs: int, pandas_runs: int, e2e_runs: int, scale: int,
          scale_rows: int, work: Path | None, baselines: Path, out: Path | None, timeout: float) -> None:
    """Time ingest against the plain fastexcel read and the pandas baseline; print a table, write JSON."""
    workbook = workbook or DEFAULT_WORKBOOK
    if not workbook.exists():
        raise click.ClickException(f"no WORKBOOK given and the reference workbook is missing: {workbook}")
    for script in ("plain_fastexcel.py", "pandas_openpyxl.py", "concat_csv.py"):
        if not (baselines / script).exists():
            raise click.ClickException(f"baseline script missing: {baselines / script}")
    started = datetime.now().astimezone()
    report: dict = {"date": started.isoformat(timespec="seconds"), "machine": machine(),
                    "workbook": str(workbook.resolve()), "targets": TARGETS}
    if runs:
        click.echo(f"readers: {runs} interleaved rounds (pandas in {min(pandas_runs, runs) if runs else 0})", err=True)
        raw = run_readers(workbook, baselines, runs, min(pandas_runs, runs),
                          timeout, say=lambda m: click.echo(m, err=True))
        base = raw["fastexcel"]
        base_wall, base_peak = statistics.median(base["wall"]), statistics.median(base["peak_mb"])
        report["readers"] = {
            name: {"wall": summarize(r["wall"]), "cpu": summarize(r["cpu"]), "peak_mb": summarize(r["peak_mb"]),
                   "wall_ratio": round(statistics.median(r["wall"]) / base_wall, 3),
                   "peak_ratio": round(statistics.median(r["peak_mb"]) / base_peak, 3),
                   "raw": r}
            for name, r in raw.items()
        }
        # same-round ratios: a noisy neighbour slows both processes of a round alike
        for name, r in report["readers"].items():
            pairs = list(zip(raw[name]["wall"], base["wall"]))
            r["wall_ratio_by_round"] = [round(w / b, 3) for w, b in pairs]
        ingest = report["readers"]["ingest"]
        report["checks"] = {
            "ingest wall / fastexcel wall (medians)": {"value": ingest["wall_ratio"], "target": TARGETS["ingest_wall"],
                                                       "ok": ingest["wall_ratio"] <= TARGETS["ingest_wall"]},
            "ingest peak / fastexcel peak (medians)": {"value": ingest["peak_ratio"], "target": TARGETS["ingest_peak"],
                                                       "ok": ingest["peak_ratio"] <= TARGETS["ingest_peak"]},
        }
    report["end_to_end"] = []
    for i in range(e2e_runs):
        click.echo(f"run end to end #{i + 1}", err=True)
        report["end_to_end"].append(run_end_to_end([workbook], timeout))
    if scale:
        click.echo(f"scale x{scale}", err=True)
        report["scale"] = run_scale(work or settings.home / "bench" / "scale", scale, scale_rows, baselines, timeout,
                                    say=lambda m: click.echo(m, err=True))
    report["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    report["seconds"] = round((datetime.now().astimezone() - started).total_seconds(), 1)
    out = out or settings.home / "bench" / f"bench-{started.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    click.echo(render(report))
    click.echo(f"wrote {out}")
