"""A command stopped with SIGTERM (`kill`, `timeout`) cleans up as one stopped with Ctrl-C does: it
exits with 128 + 15, and what it started (here the dbt fork server and its worker) ends with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def test_a_run_stopped_with_sigterm_exits_143_and_leaves_no_process(tmp_path, small_workbook):
    exe = Path(sys.executable).parent / "retail-pipeline"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETAIL_PIPELINE_")}
    proc = subprocess.Popen(
        [str(exe), "--home", str(tmp_path / "home"), "run", str(small_workbook)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline, started = time.monotonic() + 60, set()
    while time.monotonic() < deadline and proc.poll() is None:  # until dbt's server and worker run
        started |= _descendants(proc.pid)
        if len(started) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None and len(started) >= 2, f"the run ended or started nothing: {started}"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    deadline = time.monotonic() + 10
    while (left := {p for p in started if Path(f"/proc/{p}").exists()}) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"still running after the run stopped: {left}"
