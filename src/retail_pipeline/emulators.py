"""The local stand-ins for Cloud Storage, Pub/Sub and BigQuery, as subprocesses on free ports.

- Cloud Storage: PyPI ``gcp-storage-emulator`` (objects on disk under ``<root>/gcs``).
- Pub/Sub: Google's own emulator (the ``cloud-pubsub-emulator`` launcher of the gcloud SDK; Java).
- BigQuery: PyPI ``bqemulator`` (DuckDB-backed, file-backed under ``<root>/bq``). Its ``gs://``
  loads read the GCS emulator's files directly (``BQEMU_GCS_LOCAL_ROOT``). It starts through
  :mod:`.bqemulator_launch`, which keeps the emulator's SQL parses (its costliest step).

:class:`Emulators` starts them with readiness checks and timeouts, gives the environment clients
need (:meth:`Emulators.env`) and stops them. Storage and BigQuery keep their data under the root,
so a later start on the same root (``retail-pipeline status``) sees the same buckets and tables.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

PROJECT = "retail-local"  #: project id used on the emulator chain
LOCALHOST = "127.0.0.1"


class EmulatorError(RuntimeError):
    """An emulator is missing, did not start in time, or died."""


def free_port() -> int:
    """A TCP port on localhost that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        return sock.getsockname()[1]


def pubsub_launcher() -> Path | None:
    """The ``cloud-pubsub-emulator`` launcher of the gcloud SDK, or None when it is not installed.
    The usual places first; ``gcloud info`` (some 2 s of Python) only when none of them has it."""

    def launcher_in(roots: list[Path]) -> Path | None:
        for root in roots:
            launcher = root / "platform" / "pubsub-emulator" / "bin" / "cloud-pubsub-emulator"
            if launcher.is_file():
                return launcher
        return None

    roots = [Path(os.environ["CLOUDSDK_ROOT_DIR"])] if os.environ.get("CLOUDSDK_ROOT_DIR") else []
    gcloud = shutil.which("gcloud")
    if gcloud:
        roots.append(Path(gcloud).resolve().parents[1])
    roots.append(Path("/usr/lib/google-cloud-sdk"))
    found = launcher_in(roots)
    if found is not None or not gcloud:
        return found
    try:
        out = subprocess.run(
            [gcloud, "info", "--format=value(installation.sdk_root)"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout.strip()
    except subprocess.TimeoutExpired:
        out = ""
    return launcher_in([Path(out)]) if out else None


def _venv_tool(name: str) -> str | None:
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def missing() -> list[str]:
    """Names of the stand-ins that are absent on this machine (empty: all three can start)."""
    absent = []
    if _venv_tool("gcp-storage-emulator") is None:
        absent.append("gcp-storage-emulator (PyPI package)")
    if pubsub_launcher() is None:
        absent.append("Pub/Sub emulator (Debian package google-cloud-cli-pubsub-emulator)")
    elif shutil.which("java") is None:
        absent.append("java (needed by the Pub/Sub emulator)")
    if _venv_tool("bqemulator") is None:
        absent.append("bqemulator (PyPI package)")
    else:
        try:
            _spatial_extension_file()
        except EmulatorError as exc:
            absent.append(str(exc))
    return absent


def _spatial_extension_file() -> Path:
    import duckdb

    try:
        import duckdb_extension_spatial
    except ImportError as exc:
        raise EmulatorError("duckdb-extension-spatial (PyPI package, needed offline by bqemulator)") from exc
    version = duckdb.__version__
    path = Path(duckdb_extension_spatial.__file__).parent / "extensions" / f"v{version}" / "spatial.duckdb_extension"
    if not path.is_file():
        raise EmulatorError(f"duckdb-extension-spatial for duckdb {version} (no {path})")
    return path


def ensure_spatial_extension() -> None:
    """Install DuckDB's spatial extension from its wheel, once per $HOME (bqemulator loads it; offline
    DuckDB cannot download it)."""
    import duckdb

    con = duckdb.connect()
    try:
        installed = con.execute("SELECT installed FROM duckdb_extensions() WHERE extension_name = 'spatial'").fetchone()
        if installed and installed[0]:
            return
        con.execute(f"INSTALL '{_spatial_extension_file()}'")
    finally:
        con.close()


def _wait(check, what: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    import requests  # lazily: the CLI imports this module for every command

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmulatorError(f"{what} exited with code {proc.returncode}; its log {log} ends with:\n" + _tail(log))
        try:
            if check():
                return
        except (requests.RequestException, OSError):
            pass
        time.sleep(0.2)
    raise EmulatorError(f"{what} was not ready after {timeout:.0f} s; its log {log} ends with:\n" + _tail(log))


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


@dataclass
class Emulators:
    """The three emulators of one root folder. Use :meth:`start` (or ``with Emulators(root) as emu``)."""

    root: Path  #: data and logs: gcs/, bq/, logs/
    project: str = PROJECT  #: project id the chain uses
    gcs_port: int = 0  #: 0 = pick a free port at start
    pubsub_port: int = 0
    bq_port: int = 0
    with_pubsub: bool = True  #: ``status`` needs only storage and BigQuery
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def gcs_data(self) -> Path:
        """The folder under which the GCS emulator keeps objects as ``<bucket>/<name>``."""
        return self.root / "gcs" / ".cloudstorage"

    @property
    def gcs_url(self) -> str:
        return f"http://{LOCALHOST}:{self.gcs_port}"

    @property
    def pubsub_host(self) -> str:
        return f"{LOCALHOST}:{self.pubsub_port}"

    @property
    def bq_url(self) -> str:
        return f"http://{LOCALHOST}:{self.bq_port}"

    def env(self) -> dict[str, str]:
        """What clients need: the Python clients, dbt-bigquery, gcloud (``ls``) and ``bq``."""
        env = {
            "STORAGE_EMULATOR_HOST": self.gcs_url,
            "BIGQUERY_EMULATOR_HOST": self.bq_url,
            "GOOGLE_CLOUD_PROJECT": self.project,
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE": f"{self.gcs_url}/",
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_BIGQUERY": f"{self.bq_url}/bigquery/v2/",
        }
        if self.with_pubsub:
            env["PUBSUB_EMULATOR_HOST"] = self.pubsub_host
            env["CLOUDSDK_API_ENDPOINT_OVERRIDES_PUBSUB"] = f"http://{self.pubsub_host}/"
        return env

    def start(self, timeout: float = 90.0) -> Emulators:
        """Start the emulators (in parallel) and wait until each answers, or raise EmulatorError."""
        absent = [m for m in missing() if self.with_pubsub or ("Pub/Sub" not in m and "java" not in m)]
        if absent:
            raise EmulatorError("missing local stand-ins: " + "; ".join(absent))
        ensure_spatial_extension()
        logs = self.root / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.gcs_port = self.gcs_port or free_port()
        self.bq_port = self.bq_port or free_port()
        self.gcs_data.mkdir(parents=True, exist_ok=True)
        (self.root / "bq").mkdir(parents=True, exist_ok=True)
        try:
            self._spawn(
                "gcs",
                [
                    _venv_tool("gcp-storage-emulator"),
                    "--data-dir",
                    str(self.root / "gcs"),
                    "start",
                    "--host",
                    LOCALHOST,
                    "--port",
                    str(self.gcs_port),
                    "--quiet",
                ],
                {},
            )
            self._spawn(
                "bigquery",
                [
                    sys.executable,  # the bqemulator command, each SQL text parsed once (see the module)
                    "-m",
                    "retail_pipeline.bqemulator_launch",
                    "start",
                    "--rest-host",
                    LOCALHOST,
                    "--rest-port",
                    str(self.bq_port),
                    "--grpc-port",
                    str(free_port()),
                    "--persistent",
                    "--data-dir",
                    str(self.root / "bq"),
                    "--project",
                    self.project,
                    "--log-level",
                    "warning",
                ],
                {"BQEMU_GCS_LOCAL_ROOT": str(self.gcs_data)},
            )
            if self.with_pubsub:
                self.pubsub_port = self.pubsub_port or free_port()
                self._spawn("pubsub", [str(pubsub_launcher()), f"--host={LOCALHOST}", f"--port={self.pubsub_port}"], {})
            import requests

            _wait(
                lambda: requests.get(f"{self.gcs_url}/storage/v1/b", timeout=2).ok,
                "the GCS emulator",
                self.procs["gcs"],
                logs / "gcs.log",
                timeout,
            )
            _wait(
                lambda: requests.get(f"{self.bq_url}/readyz", timeout=2).ok,
                "the BigQuery emulator",
                self.procs["bigquery"],
                logs / "bigquery.log",
                timeout,
            )
            if self.with_pubsub:
                _wait(
                    lambda: requests.get(f"http://{self.pubsub_host}/", timeout=2).ok,
                    "the Pub/Sub emulator",
                    self.procs["pubsub"],
                    logs / "pubsub.log",
                    timeout,
                )
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, name: str, argv: list, extra_env: dict[str, str]) -> None:
        log = open(self.root / "logs" / f"{name}.log", "ab")
        try:
            self.procs[name] = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **extra_env},
                cwd=self.root,
                start_new_session=True,
            )
        finally:
            log.close()

    def alive(self) -> bool:
        return bool(self.procs) and all(p.poll() is None for p in self.procs.values())

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every emulator this object started (their process groups: the Pub/Sub launcher forks Java)."""
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=5)
        self.procs.clear()

    def __enter__(self) -> Emulators:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
