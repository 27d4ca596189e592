"""The local runtime: plays Eventarc and Pub/Sub push for the three function apps.

It notices new object generations in the landing and lake buckets and delivers binary-mode
``google.cloud.storage.object.v1.finalized`` CloudEvents to the ingest and load apps; it pulls
the local bus and delivers ``messagePublished`` events to the transform app. A non-2xx answer is
retried with backoff (like Eventarc with retry enabled, and Pub/Sub push), up to a limit, after
which the event is dead-lettered and reported.

Delivery goes through functions-framework apps, either in this process (``InProcessApps``: the
framework's WSGI app, called with real HTTP requests through its test client) or over the network
(``HttpApps``: functions-framework servers on localhost). Over HTTP, storage events go to a function
as many at once as it has instances (``INSTANCES``; each server is that many gunicorn workers serving
one request at a time, as Cloud Functions do with a request concurrency of 1), since Eventarc does
not wait for one delivery to end before the next. In process, workbooks go to the ingest that many
at once too (it writes only to the lake), and lake objects and messages one at a time (they share
the process's one DuckDB file).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from cloudevents.http import CloudEvent

from .events import STORAGE_ARCHIVED, binary, pubsub_published, storage_finalized
from .faults import FaultPlan
from .ports import ObjectInfo, ObjectStore, Subscription

if TYPE_CHECKING:
    from .context import Context

FUNCTIONS_DIR = Path(__file__).resolve().parents[2] / "functions"
TARGETS = ("ingest", "load", "transform")
#: instances of the storage-triggered function servers (each one request at a time, as the Terraform
#: deploys them with max_instance_request_concurrency = 1): storage events go to them this many at
#: once, as Eventarc does. The transform server, which Pub/Sub pushes to, keeps functions-framework's
#: default (one process, several threads).
INSTANCES = {"ingest": 2, "load": 4, "transform": 1}


class Apps(Protocol):
    #: the apps run in this process (they share its warehouse: a delivery wave can hold it open)
    in_process: bool

    def deliver(self, target: str, event: CloudEvent) -> tuple[int, str]: ...

    def instances(self, target: str) -> int:
        """How many events the target can take at once."""
        ...


class InProcessApps:
    """The three functions-framework apps in this process; each event is one HTTP request."""

    in_process = True

    def __init__(self, functions_dir: Path = FUNCTIONS_DIR) -> None:
        import functions_framework
        from flask import got_request_exception

        self.apps = {}
        self._errors = threading.local()  #: the failed request's error, in the thread that delivered it
        for target in TARGETS:
            app = functions_framework.create_app(target, str(functions_dir / target / "main.py"), "cloudevent")
            app.logger.handlers.clear()  # the error is reported by the runtime and in the JSON log
            app.logger.propagate = False
            got_request_exception.connect(self._remember(target), app, weak=False)
            self.apps[target] = app

    def _remember(self, target: str):
        def handler(sender, exception, **extra):
            self._errors.last = f"{type(exception).__name__}: {exception}"
            logging.getLogger("retail_pipeline.runtime").error(
                "%s failed", target, exc_info=(type(exception), exception, exception.__traceback__)
            )

        return handler

    def deliver(self, target: str, event: CloudEvent) -> tuple[int, str]:
        headers, body = binary(event)
        self._errors.last = None
        response = self.apps[target].test_client().post("/", headers=headers, data=body)
        text = response.get_data(as_text=True)
        if response.status_code >= 400 and self._errors.last:
            text = self._errors.last
        return response.status_code, text

    def instances(self, target: str) -> int:
        # the ingest reads a workbook (fastexcel parses outside the interpreter lock) and writes only to
        # the lake: as many at once as the deployed function has instances; load and transform share
        # this process's one DuckDB file: one event at a time
        return INSTANCES["ingest"] if target == "ingest" else 1


class HttpApps:
    """Functions-framework servers reached over HTTP (``retail-pipeline serve``)."""

    in_process = False

    def __init__(self, urls: dict[str, str], timeout: float = 600.0) -> None:
        self.urls = urls
        self.timeout = timeout

    def deliver(self, target: str, event: CloudEvent) -> tuple[int, str]:
        import requests

        headers, body = binary(event)
        try:
            response = requests.post(self.urls[target], headers=headers, data=body, timeout=self.timeout)
        except requests.RequestException as exc:
            return 599, str(exc)
        return response.status_code, response.text

    def instances(self, target: str) -> int:
        return INSTANCES[target]


@dataclass
class _Pending:
    target: str
    event: CloudEvent
    attempts: int = 0
    not_before: float = 0.0
    ack: Callable[[], None] | None = None
    nack: Callable[[], None] | None = None


@dataclass
class Stats:
    deliveries: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    failures: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    dead_letters: list[dict] = field(default_factory=list)
    results: list[tuple[str, dict]] = field(default_factory=list)


class Eventarc:
    """Watches buckets; every object generation not seen before becomes one finalize event, and for
    the ``removed_routes`` buckets an object that disappeared becomes one archived event."""

    def __init__(
        self,
        routes: list[tuple[ObjectStore, str]],
        state_file: Path,
        removed_routes: list[tuple[ObjectStore, str]] | None = None,
    ) -> None:
        self.routes = routes
        self.removed_routes = removed_routes or []
        self.state_file = state_file
        self.seen: dict[str, int] = json.loads(state_file.read_text()) if state_file.exists() else {}
        self._carry: list[tuple[str, CloudEvent]] = []

    def mark_seen(self) -> None:
        """Take the generations already there as delivered (earlier runs did, or the sweep finds what
        they missed); objects removed meanwhile still give their archived events on the next poll."""
        self._carry = [(t, e) for t, e in self.poll() if e["type"] == STORAGE_ARCHIVED]

    def poll(self) -> list[tuple[str, CloudEvent]]:
        found, self._carry = self._carry, []
        listed: set[str] = set()
        for store, target in self.routes:
            for info in store.list():
                key = f"{info.bucket}/{info.name}"
                listed.add(key)
                if self.seen.get(key, -1) < info.generation:
                    self.seen[key] = info.generation
                    found.append((target, storage_finalized(info)))
        for store, target in self.removed_routes:
            for key in [k for k in self.seen if k.startswith(f"{store.bucket}/") and k not in listed]:
                gone = ObjectInfo(store.bucket, key[len(store.bucket) + 1 :], self.seen.pop(key), 0, datetime.now(UTC))
                found.append((target, storage_finalized(gone, STORAGE_ARCHIVED)))
        if found:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            self.state_file.write_text(json.dumps(self.seen))
        return found


class LocalRuntime:
    """Delivers storage and bus events to the apps until nothing is left to do."""

    def __init__(
        self,
        ctx: Context,
        apps: Apps,
        *,
        subscription: Subscription,
        faults: FaultPlan | None = None,
        max_attempts: int = 5,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.ctx = ctx
        self.apps = apps
        self.faults = faults or FaultPlan()
        self.max_attempts = max_attempts
        self.say = progress or (lambda _m: None)
        self.eventarc = Eventarc(
            [(ctx.landing, "ingest"), (ctx.lake, "load")],
            ctx.settings.home / "state" / "eventarc.json",
            removed_routes=[(ctx.landing, "load")],
        )
        self.subscription = subscription
        self.queue: list[_Pending] = []
        self.stats = Stats()
        self._stop = threading.Event()
        self._lock = threading.Lock()  #: the stats and the retry queue, when deliveries run side by side
        self._in_flight: dict[str, int] = defaultdict(int)
        self._busy_since: dict[str, float] = {}

    def _enqueue(self, target: str, event: CloudEvent, ack=None, nack=None) -> None:
        copies = self.faults.copies()
        for i in range(copies):
            delay = 0.3 if self.faults.delayed() else 0.0
            # later copies after the first get no ack hooks: the bus only needs one answer
            self.queue.append(
                _Pending(
                    target,
                    event,
                    not_before=time.monotonic() + delay,
                    ack=ack if i == 0 else None,
                    nack=nack if i == 0 else None,
                )
            )

    def _collect(self) -> None:
        new = self.eventarc.poll()
        for target, event in self.faults.order(new):
            self._enqueue(target, event)
        sub = self.subscription
        in_queue = {p.event["id"] for p in self.queue if p.target == "transform"}
        messages = [m for m in sub.pull() if m.message_id not in in_queue]
        for message in self.faults.order(messages):
            event = pubsub_published(message, self.ctx.bus.topic, sub.name)
            self._enqueue(
                "transform",
                event,
                ack=lambda mid=message.message_id: sub.ack(mid),
                nack=lambda mid=message.message_id: sub.nack(mid),
            )

    def step(self) -> bool:
        """Deliver what is due; True when anything happened."""
        self._collect()
        now = time.monotonic()
        due = [p for p in self.queue if p.not_before <= now]
        if not due:
            return False
        for pending in due:
            self.queue.remove(pending)
        # in process, the wave's deliveries share one open warehouse (DuckDB: one open file, not one
        # per call); a dbt run in between lets go of it first (the transformer releases it)
        with self.ctx.warehouse.session() if self.apps.in_process else nullcontext():
            self._deliver_due(due)
        return True

    def _deliver_due(self, due: list[_Pending]) -> None:
        if self.faults.shuffle:
            self._deliver_all(due)
        else:  # storage events first (ingest, then load), then messages: the natural order of a quiet system
            for target in TARGETS:
                self._deliver_all([p for p in due if p.target == target])

    def _width(self, target: str) -> int:
        # storage events go to as many instances at once as the target has (Eventarc does not wait for
        # one to end before the next); bus messages one at a time, as the spool bus pushes them
        return 1 if target == "transform" else max(1, self.apps.instances(target))

    def _deliver_all(self, wave: list[_Pending]) -> None:
        if len(wave) < 2 or all(self._width(p.target) == 1 for p in wave):
            for pending in wave:
                self._deliver(pending)
            return
        slots = {t: threading.Semaphore(self._width(t)) for t in TARGETS}

        def one(pending: _Pending) -> None:
            with slots[pending.target]:
                self._deliver(pending)

        with ThreadPoolExecutor(max_workers=sum(self._width(t) for t in {p.target for p in wave})) as pool:
            list(pool.map(one, wave))  # re-raises what a delivery raised

    def _deliver(self, pending: _Pending) -> None:
        target, event = pending.target, pending.event
        pending.attempts += 1
        with self._lock:
            if target == "transform" and not self.stats.deliveries["transform"]:
                self.say("transform: checking each batch against its manifest; one dbt build per complete batch")
        started = time.monotonic()
        with self._lock:
            if not self._in_flight[target]:
                self._busy_since[target] = started
            self._in_flight[target] += 1
        status, body = self.apps.deliver(target, event)
        ended = time.monotonic()
        with self._lock:
            self._in_flight[target] -= 1
            if not self._in_flight[target]:  # a stage's seconds: wall time with a delivery to it in flight
                self.stats.seconds[target] += ended - self._busy_since[target]
            self._record(pending, status, body, ended - started)

    def _record(self, pending: _Pending, status: int, body: str, elapsed: float) -> None:
        target, event = pending.target, pending.event
        self.stats.deliveries[target] += 1
        subject = event.get("subject") or event["id"]
        if 200 <= status < 300:
            if pending.ack:
                pending.ack()
            self._report(target, subject, elapsed)
            return
        self.stats.failures[target] += 1
        error = _error_line(body)
        if pending.nack is not None:
            # a bus message: the bus owns redelivery (backoff, then its dead-letter folder)
            pending.nack()
            self.say(f"{target}: {subject} failed (HTTP {status}: {error}); the bus will redeliver")
            if self.subscription.is_dead_lettered(event["id"]):
                self.stats.dead_letters.append({"target": target, "subject": subject, "status": status, "error": error})
            return
        if pending.attempts >= self.max_attempts:
            self.stats.dead_letters.append({"target": target, "subject": subject, "status": status, "error": error})
            self.say(f"{target}: gave up on {subject} after {pending.attempts} attempts: {error}")
            return
        self.say(f"{target}: {subject} failed (HTTP {status}: {error}); retrying")
        pending.not_before = time.monotonic() + min(5.0, 0.1 * 2**pending.attempts)
        self.queue.append(pending)

    def _report(self, target: str, subject: str, elapsed: float) -> None:
        self.stats.results.append((target, {"subject": subject}))
        name = subject.removeprefix("objects/")
        if target == "ingest":
            self.say(f"ingest: {name} done in {elapsed:.1f} s")
        elif target == "load" and name.startswith(("sales/", "quarantine/", "manifests/")):
            self.say(f"load: {name} loaded")
        elif target == "transform" and elapsed > 1.0:  # the delivery that ran dbt; the others only checked
            self.say(f"transform: dbt build done in {elapsed:.1f} s")

    def run_until_idle(self, timeout: float = 1800.0, settle: float = 0.0) -> Stats:
        """Deliver until the buckets, the bus and the retry queue are quiet (or timeout)."""
        deadline = time.monotonic() + timeout
        quiet_since = None
        while time.monotonic() < deadline and not self._stop.is_set():
            if self.step():
                quiet_since = None
                continue
            waiting = [p.not_before for p in self.queue]
            bus_due = self.subscription.next_due_in()
            if not waiting and bus_due is None:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= settle:
                    return self.stats
            time.sleep(0.02 if not waiting else max(0.0, min(0.2, min(waiting) - time.monotonic())))
        if not self._stop.is_set():
            raise TimeoutError(f"the pipeline was still busy after {timeout:.0f} s")
        return self.stats

    def stop(self) -> None:
        self._stop.set()


def _error_line(body: str) -> str:
    text = (body or "").strip().splitlines()
    return text[-1][:300] if text else "no response body"
