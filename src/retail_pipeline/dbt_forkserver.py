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
from typing import Any

#: what a worker needs before its first parse: dbt's runner and tasks, the DuckDB adapter, the
#: worker's own loop (a module missing from an install is imported later, by the worker, if at all)
PRELOAD = (
    "dbt.cli.main",
    "dbt.task.build",
    "dbt.parser.manifest",
    "dbt.adapters.duckdb",
    "dbt.adapters.duckdb.impl",
    "retail_pipeline.dbt_session",
    "retail_pipeline.dbt_rules",
    "retail_pipeline.transform",
)

_HEADER = struct.Struct("!I")


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


class ForkServer:
    """The pipeline process's side: start the server once, ask it for workers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._sock: socket.socket | None = None
        self._pending: list[Forked] = []  #: asked for, in order, whose process ids are not read yet

    def _ensure_running(self) -> socket.socket:
        if self._process is not None and self._process.poll() is None and self._sock is not None:
            return self._sock
        self._close()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = process_env()
        try:
            # a plain interpreter (not multiprocessing's, which re-imports the parent's main script)
            self._process = subprocess.Popen(
                [sys.executable, "-m", "retail_pipeline.dbt_forkserver", str(theirs.fileno())],
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
        payload = pickle.dumps(env)
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


_server: ForkServer | None = None
_server_lock = threading.Lock()


def fork_server() -> ForkServer:
    """This process's fork server (started on first use, its socket closed when the process exits)."""
    global _server
    with _server_lock:
        if _server is None:
            import atexit

            _server = ForkServer()
            atexit.register(_server.close)
        return _server


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


def _reap(*_: Any) -> None:
    """Wait for every worker that ended (their CPU time then counts as this process's children's,
    as a plain child's would for the pipeline process)."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main(fd: int) -> None:
    """``python -m retail_pipeline.dbt_forkserver FD``: import, then fork a worker per request."""
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    signal.signal(signal.SIGCHLD, _reap)
    sock = socket.socket(fileno=fd)
    while True:
        try:
            header, fds, _flags, _addr = socket.recv_fds(sock, _HEADER.size, 2)
        except OSError:
            return
        if len(header) < _HEADER.size or len(fds) != 2:
            return  # the pipeline process closed the socket (or sent something else): done
        env = pickle.loads(_recv_exactly(sock, _HEADER.unpack(header)[0]))
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                _child(sock, env, fds[0], fds[1])
            except BaseException:
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                import atexit
                import logging

                atexit._run_exitfuncs()
                logging.shutdown()
                os._exit(code)
        for received in fds:
            os.close(received)
        sock.sendall(struct.pack("!q", pid))


if __name__ == "__main__":
    # run under the package's name, so what the worker pickles names retail_pipeline.dbt_session
    from retail_pipeline.dbt_forkserver import main as _main

    _main(int(sys.argv[1]))
