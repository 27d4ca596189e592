"""The dbt fork server: one child of the pipeline process that imports dbt once and forks a dbt
worker (:mod:`.dbt_worker`) for each home the process transforms.

Importing dbt and its DuckDB adapter costs 2.5–3.5 CPU-seconds. A process that serves one home
pays it once either way; a process that serves many (the test suite's workers, one home per test)
paid it for every worker it started. A forked worker starts with dbt already imported, then
installs the environment it was sent (built from Settings by the transformer, exactly what a new
interpreter would have been started with), before any dbt code runs, and never changes it again:
what ``exec`` with an environment does, without the imports. Its parse and everything dbt keeps
in memory are its own, as in a new interpreter.

The server holds no dbt state: it has imported modules and run nothing. It is single-threaded
(forking is safe), waits for each worker that ends, and ends when the pipeline process closes its
socket or exits.

The same server, with the dbt job's imports (``PRELOADS["dbt-job"]``), starts the executions of the
local Cloud Run stand-in (:mod:`.strict.run_admin`): :meth:`ForkServer.run_script` forks an
interpreter that runs the job's script with the execution's argv, environment, working folder and
log, in a session of its own, as ``python SCRIPT ARGS`` would, without importing dbt and the
BigQuery client again (4-5 CPU-seconds per execution). :class:`ScriptProcess` is its handle, with the
part of ``subprocess.Popen`` the stand-in uses; the server sends each script's exit code when it ends.
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .process_exit import exit_code, exit_now

#: what a server imports before it forks. "dbt": what a worker needs before its first parse (dbt's
#: runner and tasks, the DuckDB adapter, the worker's own loop); "dbt-job": what the dbt job's
#: script imports (dbt/entrypoint.py, on the BigQuery target). A module missing from an install is
#: imported later, by the child, if at all.
PRELOADS = {
    "dbt": (
        "dbt.cli.main",
        "dbt.task.build",
        "dbt.parser.manifest",
        "dbt.adapters.duckdb",
        "dbt.adapters.duckdb.impl",
        "retail_pipeline.dbt_session",
        "retail_pipeline.dbt_rules",
        "retail_pipeline.transform",
    ),
    "dbt-job": (
        "dbt.cli.main",
        "dbt.task.build",
        "dbt.parser.manifest",
        "dbt.adapters.bigquery",
        "dbt.adapters.bigquery.impl",
        "google.cloud.bigquery",
    ),
}

#: the classes whose JSON schemas dbt builds the first time it parses in a process (it validates the
#: project, the profile and each node's config against them): 1.15 s of a 3.0 CPU-s parse of this
#: project, in every worker and job execution. The server builds them once (dbt keeps each in a
#: cache on its class), so every child it forks starts with them. A class another dbt version moved
#: or renamed is left to the child.
SCHEMAS = (
    "dbt.contracts.project.Project",
    "dbt.contracts.project.ProjectFlags",
    "dbt.contracts.project.ProfileConfig",
    "dbt.contracts.project.PackageConfig",
    "dbt.contracts.project.Configuration",
    "dbt.contracts.selection.SelectorFile",
    "dbt.artifacts.resources.v1.config.NodeConfig",
    "dbt.artifacts.resources.v1.config.TestConfig",
    "dbt.artifacts.resources.v1.config.Hook",
    "dbt.artifacts.resources.v1.model.ModelConfig",
    "dbt.artifacts.resources.v1.components.Contract",
    "dbt.artifacts.resources.v1.source_definition.SourceConfig",
    "dbt.artifacts.resources.v1.unit_test_definition.UnitTestConfig",
    "dbt.contracts.graph.nodes.ModelNode",
    "dbt.contracts.graph.nodes.GenericTestNode",
    "dbt.contracts.graph.nodes.SingularTestNode",
    "dbt.contracts.graph.nodes.HookNode",
    "dbt.contracts.graph.unparsed.UnparsedModelUpdate",
    "dbt.contracts.graph.unparsed.UnparsedSourceDefinition",
    "dbt.contracts.graph.unparsed.UnparsedUnitTest",
    "dbt.task.test.TestResultData",
)
#: the profile's credentials class, per preload
CREDENTIALS = {
    "dbt": "dbt.adapters.duckdb.credentials.DuckDBCredentials",
    "dbt-job": "dbt.adapters.bigquery.credentials.BigQueryCredentials",
}

_HEADER = struct.Struct("!I")
_STATUS = struct.Struct("!i")  #: a script's exit code, as subprocess gives it (-N: ended by signal N)
UNKNOWN_EXIT = 255  #: a script's exit code when its server ended before it did


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError("the fork server's socket closed")
        data += chunk
    return data


def process_env(env_items: tuple[tuple[str, str | None], ...] = ()) -> dict[str, str]:
    """The environment of a dbt process: this process's system variables (none of the pipeline's
    own settings), this package's import path, and ``env_items`` (None: unset)."""
    names = {name for name, _ in env_items}
    env = {k: v for k, v in os.environ.items() if k not in names and not k.startswith("RETAIL_PIPELINE_")}
    env.update({name: value for name, value in env_items if value is not None})
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env


class Forked:
    """A worker asked of the server. Its process id arrives once the server has imported dbt (the
    first request waits seconds for it), so it is read when first needed, not when asked for."""

    def __init__(self, server: ForkServer) -> None:
        self._server = server
        self.answer: int | None = None  #: the process id; 0 if the server ended before answering

    @property
    def pid(self) -> int | None:
        """The worker's process id, or None if the server ended before it forked one."""
        if self.answer is None:
            self._server.read_answers(self)
        return self.answer or None


class ScriptProcess:
    """A script the server runs (:meth:`ForkServer.run_script`): what the Run stand-in uses of
    ``subprocess.Popen`` (``pid``, ``returncode``, ``poll``, ``wait``, ``terminate``, ``kill``)."""

    def __init__(self, args: list[str], forked: Forked, status_fd: int) -> None:
        self.args = args
        self._forked = forked
        self.returncode: int | None = None
        self._ended = threading.Event()
        threading.Thread(target=self._await_status, args=(status_fd,), name="script-status", daemon=True).start()

    @property
    def pid(self) -> int | None:
        return self._forked.pid

    def _await_status(self, status_fd: int) -> None:
        data = b""
        try:
            while len(data) < _STATUS.size:
                chunk = os.read(status_fd, _STATUS.size - len(data))
                if not chunk:
                    break
                data += chunk
        finally:
            os.close(status_fd)
        if len(data) == _STATUS.size:
            self.returncode = _STATUS.unpack(data)[0]
        else:  # the server ended first: the script runs on without it; its exit code is not known
            while (pid := self.pid) is not None and alive(pid):
                time.sleep(0.2)
            self.returncode = UNKNOWN_EXIT
        self._ended.set()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._ended.wait(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None and (pid := self.pid) is not None:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ForkServer:
    """The pipeline process's side: start the server once, ask it for workers (or scripts).
    ``preload`` names its imports (:data:`PRELOADS`); ``env`` is its environment (default
    :func:`process_env`), whose ``PYTHONPATH`` its children keep."""

    def __init__(self, preload: str = "dbt", env: dict[str, str] | None = None) -> None:
        self.preload = preload
        self.env = env
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._sock: socket.socket | None = None
        self._pending: list[Forked] = []  #: asked for, in order, whose process ids are not read yet

    def _ensure_running(self) -> socket.socket:
        if self._process is not None and self._process.poll() is None and self._sock is not None:
            return self._sock
        self._close()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = self.env if self.env is not None else process_env()
        try:
            # a plain interpreter (not multiprocessing's, which re-imports the parent's main script)
            self._process = subprocess.Popen(
                [sys.executable, "-m", "retail_pipeline.dbt_forkserver", str(theirs.fileno()), self.preload],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                env=env,
            )
        finally:
            theirs.close()
        self._sock = ours
        return ours

    def fork(self, env: dict[str, str], fds: tuple[int, int]) -> Forked:
        """A new worker serving ``serve(requests=fds[0], replies=fds[1])`` with environment ``env``.
        Returns at once (the server may still be importing dbt); the caller keeps (and closes) its
        own copies of the descriptors."""
        return self._send(("worker", env), fds)

    def run_script(self, argv: Sequence[str], env: dict[str, str], cwd: Path | None, log: Path) -> ScriptProcess:
        """``python ARGV`` (a script and its arguments) in a child of the server: environment ``env``
        (nothing else), working folder ``cwd``, stdout and stderr appended to ``log``, stdin empty, a
        session of its own. Returns at once."""
        status_read, status_write = os.pipe()
        log_fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            forked = self._send(("script", list(argv), env, str(cwd) if cwd else None), (log_fd, status_write))
        except BaseException:
            os.close(status_read)
            raise
        finally:
            os.close(log_fd)
            os.close(status_write)
        return ScriptProcess([sys.executable, *argv], forked, status_read)

    def _send(self, message: tuple, fds: tuple[int, int]) -> Forked:
        payload = pickle.dumps(message)
        with self._lock:
            for attempt in (1, 2):  # a server that died (killed, out of memory) is started again, once
                sock = self._ensure_running()
                try:
                    socket.send_fds(sock, [_HEADER.pack(len(payload)) + payload], list(fds))
                except OSError:
                    self._close()
                    if attempt == 2:
                        raise
                    continue
                forked = Forked(self)
                self._pending.append(forked)
                return forked
        raise AssertionError("unreachable")

    def read_answers(self, until: Forked) -> None:
        """Read the process ids the server sends, in the order asked, up to ``until``'s."""
        with self._lock:
            while until.answer is None and self._pending and self._sock is not None:
                try:
                    pid = int(struct.unpack("!q", _recv_exactly(self._sock, 8))[0])
                except (OSError, EOFError):
                    self._close()
                    break
                self._pending.pop(0).answer = pid
            if until.answer is None:
                until.answer = 0

    def _close(self) -> None:
        for forked in self._pending:
            forked.answer = 0 if forked.answer is None else forked.answer
        self._pending = []
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._process is not None:
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def close(self) -> None:
        """Close the socket: the server's loop ends (its workers run on until their own pipes close)."""
        with self._lock:
            self._close()


_servers: dict[tuple[str, tuple[tuple[str, str], ...]], ForkServer] = {}
_server_lock = threading.Lock()


def fork_server(preload: str = "dbt", env: dict[str, str] | None = None) -> ForkServer:
    """This process's fork server for ``preload`` and environment ``env`` (default
    :func:`process_env`), started on first use, its socket closed when the process exits."""
    with _server_lock:
        key = (preload, tuple(sorted(env.items())) if env is not None else ())
        if key not in _servers:
            import atexit

            _servers[key] = server = ForkServer(preload, env)
            atexit.register(server.close)
        return _servers[key]


def alive(pid: int) -> bool:
    """Whether the worker with this process id still runs. The server waits for its workers as they
    end; a worker that outlived its server ends as a zombie until init waits for it, which counts
    as ended here."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True


def _child(sock: socket.socket, env: dict[str, str], requests_fd: int, replies_fd: int) -> None:
    from multiprocessing.connection import Connection

    from .dbt_session import serve

    sock.close()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    # the worker's environment, installed once before any dbt code runs (as exec would)
    os.environ.clear()
    os.environ.update(env)
    serve(Connection(requests_fd, writable=False), Connection(replies_fd, readable=False))


def _script_child(sock: socket.socket, argv: list[str], env: dict[str, str], cwd: str | None, fds: list[int]) -> None:
    """In the forked child: become ``python ARGV`` as a new process would (see ForkServer.run_script)."""
    import runpy

    log_fd, status_fd = fds
    sock.close()
    os.close(status_fd)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    if cwd:
        os.chdir(cwd)
    os.environ.clear()
    os.environ.update(_as_started(env))
    script = os.path.abspath(argv[0])
    sys.argv = [argv[0], *argv[1:]]
    sys.path[0] = os.path.dirname(script)  # as `python SCRIPT` puts it first
    runpy.run_path(script, run_name="__main__")


def _as_started(env: dict[str, str]) -> dict[str, str]:
    """``env`` as a new interpreter's ``os.environ`` shows it: with no locale set (C or POSIX), the
    interpreter coerces it to UTF-8 and says so in ``LC_CTYPE`` (PEP 538). What else an interpreter
    takes from its environment when it starts (its hash seed, other ``PYTHON*`` variables) is the
    server's, started with the same ``PYTHONPATH`` and system variables."""
    if env.get("LC_ALL") or env.get("PYTHONCOERCECLOCALE") == "0":
        return env
    if (env.get("LC_CTYPE") or env.get("LANG") or "C") in ("C", "POSIX"):
        return {**env, "LC_CTYPE": "C.UTF-8"}
    return env


_status_fds: dict[int, int] = {}  #: in the server: a running script's pid → where its exit code goes


def _reap(*_: Any) -> None:
    """Wait for every child that ended (their CPU time then counts as this process's children's,
    as a plain child's would for the pipeline process); send each script's exit code."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        status_fd = _status_fds.pop(pid, None)
        if status_fd is not None:
            try:
                os.write(status_fd, _STATUS.pack(os.waitstatus_to_exitcode(status)))
            except OSError:
                pass  # the pipeline process stopped listening
            os.close(status_fd)


def main(fd: int, preload: str = "dbt") -> None:
    """``python -m retail_pipeline.dbt_forkserver FD [PRELOAD]``: import, then fork a child per request;
    when the pipeline process closes the socket, exit at once. The server holds nothing to write or
    close but its socket, and tearing down dbt's imports took about half a second of the pipeline
    process's exit (it waits for its servers); children still running carry on."""
    import importlib

    for name in PRELOADS[preload]:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    build_schemas((*SCHEMAS, CREDENTIALS[preload]))
    signal.signal(signal.SIGCHLD, _reap)
    code = 0
    try:
        _serve(socket.socket(fileno=fd))
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    exit_now(code, join_threads=False)


def build_schemas(paths: Sequence[str]) -> list[str]:
    """Build (and so cache) the JSON schema of each ``module.Class`` in ``paths``; returns those built."""
    import importlib

    built = []
    for path in paths:
        module, _, name = path.rpartition(".")
        try:
            getattr(importlib.import_module(module), name).json_schema()
        except Exception:  # moved, renamed or changed in another dbt version: the child builds what it needs
            continue
        built.append(path)
    return built


def _serve(sock: socket.socket) -> None:
    """Fork a child per request until the socket closes."""
    while True:
        try:
            header, fds, _flags, _addr = socket.recv_fds(sock, _HEADER.size, 2)
        except OSError:
            return
        if len(header) < _HEADER.size or len(fds) != 2:
            return  # the pipeline process closed the socket (or sent something else): done
        kind, *request = pickle.loads(_recv_exactly(sock, _HEADER.unpack(header)[0]))
        # a script's exit code is sent when it ends: no SIGCHLD until its pid is known here
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        pid = os.fork()
        if pid == 0:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
            for other in _status_fds.values():  # the other scripts' exit-code pipes: the server's alone
                os.close(other)
            _status_fds.clear()
            code = 0
            try:
                if kind == "script":
                    _script_child(sock, request[0], request[1], request[2], fds)
                else:
                    _child(sock, request[0], fds[0], fds[1])
            except SystemExit as exc:
                code = exit_code(exc.code)
            except BaseException:
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                # a script's threads are waited for, as the interpreter's exit does
                exit_now(code, join_threads=kind == "script")
        if kind == "script":
            os.close(fds[0])  # the log: the child has it
            _status_fds[pid] = fds[1]
        else:
            for received in fds:
                os.close(received)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        sock.sendall(struct.pack("!q", pid))


if __name__ == "__main__":
    # run under the package's name, so what the worker pickles names retail_pipeline.dbt_session
    from retail_pipeline.dbt_forkserver import main as _main

    _main(int(sys.argv[1]), *sys.argv[2:3])
