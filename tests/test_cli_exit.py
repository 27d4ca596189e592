"""The console script ends with ``os._exit`` (cli._exit_now) after doing what the interpreter's exit
does: waiting for threads, running atexit handlers, flushing the streams, keeping the exit code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# a command run as the console script runs it, with a thread still working and an atexit handler
SCRIPT = """
import atexit, sys, threading, time
from pathlib import Path

out = Path(sys.argv[1])

def late():
    time.sleep(0.5)
    (out / "thread").write_text("finished")

threading.Thread(target=late).start()  # not a daemon: the interpreter waits for it at exit
atexit.register(lambda: (out / "atexit").write_text("ran"))
sys.argv = ["retail-pipeline", *sys.argv[2:]]
from retail_pipeline.cli import main

main()
raise AssertionError("main() returned instead of ending the process")
"""


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), *args], capture_output=True, text=True, timeout=120
    )


def test_a_command_exits_with_its_output_flushed_its_threads_joined_and_its_atexit_run(tmp_path):
    proc = _run(tmp_path, "schema", "bigquery-json")
    assert proc.returncode == 0, proc.stderr
    schema = json.loads(proc.stdout)  # the whole output arrived: it parses
    assert {"name", "type"} <= set(schema[0])
    assert (tmp_path / "thread").read_text() == "finished"
    assert (tmp_path / "atexit").read_text() == "ran"


def test_a_usage_error_keeps_its_exit_code_and_message(tmp_path):
    proc = _run(tmp_path, "no-such-command")
    assert proc.returncode == 2
    assert "No such command" in proc.stderr
    assert (tmp_path / "thread").read_text() == "finished"
    assert (tmp_path / "atexit").read_text() == "ran"
