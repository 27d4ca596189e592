"""One child process measured: wall seconds from fork to exit, CPU seconds, its own peak RSS.

Linux charges a child's ``ru_maxrss`` with the RSS of the process it was forked from (the
pre-exec image), so children are forked from a small launcher process (LAUNCHER), not from the
(possibly large) calling process; the launcher reports the child's own rusage from ``os.wait4``.

The children run with Python's default bytecode cache (``child_env``): a machine that sets
``PYTHONDONTWRITEBYTECODE=1`` (this machine type does) would otherwise have every measured process
compile every module it imports from source, which costs the ingest (the pipeline's package, click,
pyarrow's compute and Parquet modules) about 0.2 s more than the plain read, which imports little.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Measure:
    """One process: wall seconds from fork to exit, CPU seconds (user + sys), peak RSS in MB, exit code."""

    wall: float
    cpu: float
    peak_mb: float
    returncode: int


#: Runs one command and writes its rusage as JSON to argv[1].
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


def child_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """`env` (default: this process's environment) without PYTHONDONTWRITEBYTECODE: the measured
    processes keep the compiled modules, as Python does by default and as a deployed function does."""
    return {k: v for k, v in (os.environ if env is None else env).items() if k != "PYTHONDONTWRITEBYTECODE"}


def measure(argv: list[str], *, timeout: float, log: Path, env: dict[str, str] | None = None) -> Measure:
    """Run `argv` as a child process (through LAUNCHER), output to `log`; killed at `timeout` seconds.
    The child's environment is `env` (default: this one's) with the bytecode cache on (``child_env``)."""
    result_path = log.with_name(log.name + ".rusage.json")
    result_path.unlink(missing_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-S", "-c", LAUNCHER, str(result_path), *argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=child_env(env),
            start_new_session=True,
        )
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


def summarize(values: list[float]) -> dict[str, float]:
    """min / median / max and the number of values."""
    return {"min": min(values), "median": round(statistics.median(values), 3), "max": max(values), "n": len(values)}


def machine() -> dict[str, Any]:
    """nproc, CPU model, RAM, load average, Python and reader versions."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
    except (OSError, StopIteration, ValueError):
        mem_kb = 0
    from importlib.metadata import PackageNotFoundError, version

    versions: dict[str, str | None] = {}
    for package in ("fastexcel", "pyarrow", "numpy", "pandas", "openpyxl"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu or platform.processor(),
        "ram_gb": round(mem_kb / 1024**2, 1),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }
