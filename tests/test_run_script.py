"""The fork server runs a job's script as ``python SCRIPT ARGS`` would (retail_pipeline/dbt_forkserver.py,
ForkServer.run_script): the local Cloud Run stand-in starts the dbt job's executions that way."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from retail_pipeline.dbt_forkserver import ForkServer

# What a process can see of how it was started, as JSON on stdout; a line on stderr; a child process
# of its own; a thread still writing when the script's code ends; the exit code its args ask for.
SCRIPT = """
import json, os, subprocess, sys, threading, time

def late():
    time.sleep(0.3)
    print("thread done", file=sys.stderr)

threading.Thread(target=late).start()
child = subprocess.run([sys.executable, "-c", "print('child ran')"], capture_output=True, text=True)
print(json.dumps({
    "argv": sys.argv, "cwd": os.getcwd(), "env": dict(os.environ), "path": sys.path, "name": __name__,
    "stdin": sys.stdin.read(), "session_leader": os.getsid(0) == os.getpid(), "child": child.stdout,
    "fds": sorted(os.listdir("/proc/self/fd")),
}))
print("to stderr", file=sys.stderr)
sys.exit(int(sys.argv[sys.argv.index("--exit") + 1]))
"""


@pytest.fixture(scope="module")
def server():
    """One server for the module (it imports dbt and the BigQuery client: 4-5 CPU-seconds)."""
    started = ForkServer("dbt-job", env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parent)})
    yield started
    started.close()


def _both(server: ForkServer, tmp_path: Path, args: list[str]) -> tuple[tuple[int, str], tuple[int, str]]:
    script = tmp_path / "job" / "entry.py"
    script.parent.mkdir()
    script.write_text(SCRIPT)
    work = tmp_path / "work"
    work.mkdir()
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parent), "JOB_SETTING": "x y"}
    runs = []
    for how in ("exec", "fork"):
        log = tmp_path / f"{how}.log"
        if how == "exec":
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    [sys.executable, str(script), *args],
                    env=env,
                    cwd=work,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
                code = proc.wait(60)
        else:
            code = server.run_script([str(script), *args], env, work, log).wait(60)
        runs.append((code, log.read_text()))
    return runs[0], runs[1]


def test_a_script_runs_as_a_new_interpreter_would(server, tmp_path):
    # another script runs meanwhile: the new one must not hold anything of it (its exit-code pipe)
    other = tmp_path / "other.py"
    other.write_text("import time\ntime.sleep(60)\n")
    running = server.run_script([str(other)], {"PATH": "/usr/bin"}, tmp_path, tmp_path / "other.log")
    try:
        (exec_code, exec_log), (fork_code, fork_log) = _both(server, tmp_path, ["--vars", '{"a": 1}', "--exit", "3"])
    finally:
        running.terminate()
    assert running.wait(30) == -signal.SIGTERM
    assert exec_code == fork_code == 3

    def seen(log: str) -> tuple[dict, list[str]]:
        lines = log.splitlines()
        [report] = [json.loads(line) for line in lines if line.startswith("{")]
        return report, sorted(line for line in lines if not line.startswith("{"))

    (exec_seen, exec_other), (fork_seen, fork_other) = seen(exec_log), seen(fork_log)
    assert fork_seen == exec_seen  # argv, folder, environment (nothing more), sys.path, __main__, stdin, session, fds
    assert fork_seen["env"]["JOB_SETTING"] == "x y" and "RETAIL_PIPELINE_HOME" not in fork_seen["env"]
    assert fork_seen["argv"][1:] == ["--vars", '{"a": 1}', "--exit", "3"]
    assert fork_seen["name"] == "__main__" and fork_seen["session_leader"] and fork_seen["stdin"] == ""
    assert fork_seen["child"] == "child ran\n"  # its own child process was waited for
    assert fork_seen["path"][0] == str(tmp_path / "job")
    assert fork_other == exec_other == ["thread done", "to stderr"]  # stderr in the log; the thread ran to its end


def test_an_exception_exits_1_with_its_traceback_in_the_log(server, tmp_path):
    script = tmp_path / "boom.py"
    script.write_text("raise RuntimeError('no connection')\n")
    log = tmp_path / "boom.log"
    assert server.run_script([str(script)], {"PATH": "/usr/bin"}, tmp_path, log).wait(60) == 1
    assert "RuntimeError: no connection" in log.read_text()


def test_a_terminated_script_ends_by_its_signal(server, tmp_path):
    script = tmp_path / "slow.py"
    script.write_text("import time\nprint('started', flush=True)\ntime.sleep(60)\n")
    log = tmp_path / "slow.log"
    proc = server.run_script([str(script)], {"PATH": "/usr/bin"}, tmp_path, log)
    deadline = time.monotonic() + 60  # the server's first child waits for its imports
    while not log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(0.5)
    assert proc.poll() is None
    proc.terminate()
    assert proc.wait(30) == -signal.SIGTERM
    assert proc.poll() == -signal.SIGTERM and log.read_text() == "started\n"
