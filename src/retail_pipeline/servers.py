"""The three functions as ``functions-framework`` servers on localhost (subprocesses).

Each server gets an environment built from :class:`~retail_pipeline.config.Settings` (and its own
identity on the emulator chain), never this process's configuration.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .config import Settings, child_env
from .emulators import LOCALHOST, free_port
from .runtime import FUNCTIONS_DIR, INSTANCES, TARGETS


def reachable(url: str) -> bool:
    import requests  # lazily: the CLI imports this module

    try:
        requests.get(url, timeout=2)
        return True
    except requests.RequestException:
        return False


class FunctionServers:
    """``functions-framework`` servers for ingest, load and transform."""

    def __init__(self, settings: Settings, identities: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.identities = identities or {}  #: target -> service account it acts as (emulator chain)
        self.ports = {t: free_port() for t in TARGETS}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def urls(self) -> dict[str, str]:
        return {t: f"http://{LOCALHOST}:{p}/" for t, p in self.ports.items()}

    def start(self, timeout: float = 60.0) -> FunctionServers:
        logs = self.settings.home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        tool = Path(sys.executable).parent / "functions-framework"
        for target, port in self.ports.items():
            settings = self.settings.with_changes(identity=self.identities.get(target, self.settings.identity))
            # like Cloud Functions with max_instance_request_concurrency = 1: a few instances (gunicorn
            # workers forked from one loaded app), each serving one request at a time
            env = {**child_env(settings), "PYTHONUNBUFFERED": "1"}
            if target != "transform":
                env.update(WORKERS=str(INSTANCES[target]), THREADS="1")
            with open(logs / f"function-{target}.log", "ab") as log:
                self.procs[target] = subprocess.Popen(
                    [
                        str(tool),
                        "--target",
                        target,
                        "--source",
                        str(FUNCTIONS_DIR / target / "main.py"),
                        "--signature-type",
                        "cloudevent",
                        "--host",
                        LOCALHOST,
                        "--port",
                        str(port),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    start_new_session=True,
                )
        deadline = time.monotonic() + timeout
        for target, url in self.urls.items():
            while not reachable(url):
                if self.procs[target].poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"the {target} function server did not start; see {logs}/function-{target}.log")
                time.sleep(0.2)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        self.procs.clear()
