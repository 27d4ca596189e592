"""`retail-pipeline serve` as a user runs it: the embedded chain's three function servers and the
dispatcher; a workbook dropped from another shell goes through to the fact; Ctrl-C stops it all."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

EXE = Path(sys.executable).parent / "retail-pipeline"


def _cli(home: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(EXE), "--home", str(home), *args], capture_output=True, text=True, env=env, timeout=120)


#: runs ARGV with Ctrl-C's signal at its default, as in a terminal's foreground job: a process started
#: in the background of a shell (`make test &`) passes SIGINT down ignored, and Python then leaves it so
AS_IN_A_TERMINAL = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
)


@pytest.mark.slow
def test_serve_loads_a_dropped_workbook_and_stops_on_ctrl_c(tmp_path, small_workbook):
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETAIL_PIPELINE_")}
    proc = subprocess.Popen(
        [sys.executable, "-c", AS_IN_A_TERMINAL, str(EXE), "--home", str(home), "serve", "--poll", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    err: list[str] = []
    serving = threading.Event()

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            err.append(line)
            if "serving; Ctrl-C stops" in line:
                serving.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        assert serving.wait(120), "".join(err)
        dropped = _cli(home, "drop", str(small_workbook), env=env)
        assert dropped.returncode == 0, dropped.stderr
        deadline, status = time.monotonic() + 180, {}
        while time.monotonic() < deadline:
            shown = _cli(home, "status", "--json", env=env)
            status = json.loads(shown.stdout) if shown.returncode == 0 and shown.stdout.strip() else {}
            states = [b["state"] for b in status.get("batches", [])]
            if states == ["transformed"] or any("failed" in s or s == "rejected" for s in states):
                break  # an end state (a failed build was one when `status` held the file as dbt opened it)
            time.sleep(1)
        assert [b["state"] for b in status["batches"]] == ["transformed"], status
        batch = status["batches"][0]
        assert status["warehouse"]["fact_rows"] == batch["rows"]["loaded"] > 0
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.terminate()  # leave no server behind (serve stops on SIGTERM too), then fail
            proc.wait(timeout=60)
            raise
        reader.join(10)  # stderr read to its end
        assert proc.stdout is not None
        out = proc.stdout.read()  # a few lines: the environment for other shells
    assert proc.returncode == 0, "".join(err)
    assert "transform:" in out and "landing" in out  # the environment it printed for other shells
    assert "stopped" in "".join(err)
