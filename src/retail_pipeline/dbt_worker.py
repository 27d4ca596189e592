"""The dbt worker: one child process per pipeline process that imports dbt, parses the project and
runs every dbt command of this process (see :mod:`.dbt_session` for the child's side). It is forked
from the process's dbt fork server (:mod:`.dbt_forkserver`), which imports dbt once for every
worker the process starts.

Why a process and not a thread: dbt is pure Python (imports, Jinja, its runner); in a thread it
holds the interpreter lock for seconds and slows ingest and load, which run in the main process at
the same time. A child process imports and parses on the other core while the main process works,
keeps the parsed project between batches, and leaves the main process free of dbt's imports and
global state. Requests are answered in order; if the child dies, the request raises (the platform
retries it) and the next request starts a new child.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from .dbt_forkserver import Forked, alive, fork_server, process_env
from .dbt_session import DbtReply, DbtRequest

log = logging.getLogger(__name__)


class DbtWorkerDied(RuntimeError):
    """The dbt worker process ended while running a request: transient, the event is retried."""


class DbtWorker:
    """A child process running dbt requests one at a time, in the order they were sent."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._forked: Forked | None = None
        self._requests: Any = None
        self._replies: Any = None
        self._unanswered = 0  #: requests sent whose replies nobody waits for (warm-ups)
        self._env_items: tuple[tuple[str, str | None], ...] = ()

    def _ensure_started(self, env_items: tuple[tuple[str, str | None], ...]) -> None:
        """A worker whose environment is the request's (built from Settings by the transformer): dbt
        reads its profile's and sources' variables from its process environment, so a request for
        other settings gets a new worker (one process serves one home, so that is rare)."""
        if self._pid is not None and alive(self._pid) and env_items == self._env_items:
            return
        self._stop()  # a child that died, or one with other settings: its pipes go with it
        self._env_items = env_items
        # forked by this process's dbt fork server, which has imported dbt already; the two pipes carry
        # multiprocessing's pickling connections
        requests_read, requests_write = os.pipe()
        replies_read, replies_write = os.pipe()
        try:
            self._forked = fork_server().fork(process_env(env_items), (requests_read, replies_write))
        except BaseException:
            os.close(requests_write)
            os.close(replies_read)
            raise
        finally:
            os.close(requests_read)
            os.close(replies_write)
        self._requests = Connection(requests_write, readable=False)
        self._replies = Connection(replies_read, writable=False)
        self._unanswered = 0

    @property
    def _pid(self) -> int | None:
        """The worker's process id (None: none asked for, or its server ended before forking it)."""
        return self._forked.pid if self._forked is not None else None

    def send_ahead(self, request: DbtRequest) -> None:
        """Send a request without waiting for it (a warm-up: the reply is read and logged later)."""
        with self._lock:
            self._ensure_started(request.env)
            self._requests.send(request)
            self._unanswered += 1

    def call(self, request: DbtRequest, timeout: float = 4 * 3600) -> DbtReply:
        """Send a request and wait for its reply (after the replies of requests sent ahead of it)."""
        with self._lock:
            self._ensure_started(request.env)
            try:
                self._requests.send(request)
                while self._unanswered:
                    self._log_spans("dbt warm-up", self._receive(timeout))
                    self._unanswered -= 1
                reply = self._receive(timeout)
            except (EOFError, OSError, TimeoutError) as exc:
                self._stop()
                raise DbtWorkerDied(f"the dbt worker process stopped: {exc or type(exc).__name__}") from exc
        if reply.status == "crashed":
            raise DbtWorkerDied(f"dbt failed in the worker: {reply.error}")
        self._log_spans("dbt", reply)
        return reply

    def _receive(self, timeout: float) -> DbtReply:
        if not self._replies.poll(timeout):
            raise TimeoutError(f"no answer from the dbt worker in {timeout:.0f} s")
        return self._replies.recv()

    @staticmethod
    def _log_spans(what: str, reply: DbtReply) -> None:
        spans = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in reply.spans.items())
        log.info("%s: %s (%s)", what, reply.status, spans, extra={"stage": "transform", "spans": reply.spans})

    def _stop(self, grace: float = 0.0) -> None:
        """Close the pipes (the child's loop ends on end of file); terminate it if it has not
        ended after ``grace`` seconds."""
        for conn in (self._requests, self._replies):
            if conn is not None:
                conn.close()
        if self._pid is not None and alive(self._pid):
            deadline = time.monotonic() + grace
            while alive(self._pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                if not alive(self._pid):
                    break
                try:
                    os.kill(self._pid, sig)
                except ProcessLookupError:
                    break
                deadline = time.monotonic() + wait
                while alive(self._pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
        self._forked = self._requests = self._replies = None

    def close(self) -> None:
        """Stop the child: it ends its loop and exits (cleaning up after dbt), or is terminated."""
        with self._lock:
            self._stop(grace=5.0)


_worker: DbtWorker | None = None
_worker_lock = threading.Lock()


def worker() -> DbtWorker:
    """This process's dbt worker (started on first use, stopped when the process exits)."""
    global _worker
    with _worker_lock:
        if _worker is None:
            fork_server()  # registered first, so at exit the worker stops before its server
            _worker = DbtWorker()
            atexit.register(_worker.close)
        return _worker
