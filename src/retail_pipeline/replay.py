"""Replay a batch: re-emit finalize events for its lake objects and re-publish its message with a
fresh claim key, so it is re-loaded (a no-op by the ledger) and re-transformed (a new run)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from . import context
from .chain import Recorded
from .emulators import PROJECT
from .events import pubsub_published, storage_finalized
from .logs import log_to_file
from .pipeline import SUBSCRIPTION
from .ports import Message
from .runtime import Apps, HttpApps, InProcessApps, LocalRuntime
from .servers import reachable
from .status import collect


class ReplayError(RuntimeError):
    """The replay could not be done; the message says why."""


def _ledger(ctx: context.Context, batch_id: str) -> dict[str, Any]:
    record = next((r for r in ctx.warehouse.batch_records() if r.batch_id == batch_id), None)
    return {} if record is None else {f"{k}:{p}": rows for (k, p), rows in sorted(record.loaded.items())}


def replay_batch(
    chain: Recorded,
    batch_id: str,
    *,
    claim_key: str | None = None,
    messages_only: bool = False,
    timeout: float = 900.0,
    say: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any]:
    """Replay ``batch_id`` on the chain the home recorded; waits for the new transform run."""
    settings = chain.settings
    ctx = context.Context(settings)
    context.use(ctx)
    if chain.emulators is not None:
        ctx.bus.provision()  # emulators started just for this replay hold no topic yet
    serving = bool(chain.servers) and all(reachable(u) for u in chain.servers.values())
    apps: Apps
    if serving:
        apps = HttpApps(chain.servers)
    else:
        (settings.home / "logs").mkdir(parents=True, exist_ok=True)
        log_to_file(settings.home / "logs" / "pipeline.jsonl")  # the terminal is for the replay's own report
        apps = InProcessApps()
    ledger_before = _ledger(ctx, batch_id)
    key = claim_key or f"replay-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:4]}"
    loads = []
    if not messages_only:
        objects = [o for o in ctx.lake.list() if o.metadata.get("batch_id") == batch_id and not o.name.startswith("_")]
        if not objects:
            raise ReplayError(f"no lake objects carry batch id {batch_id}")
        for info in objects:
            status, body = apps.deliver("load", storage_finalized(info))
            if status >= 300:
                raise ReplayError(f"load of {info.name} failed (HTTP {status}): {body[-300:]}")
            loads.append({"object": info.name, "http_status": status})
            say(f"load {info.name}: delivered (HTTP {status})")
    payload = {"batch_id": batch_id, "replay": key}
    attributes = {"batch_id": batch_id, "replay": key, "kind": "replay"}
    message_id = ctx.bus.publish(json.dumps(payload).encode(), attributes)
    say(f"published replay message {message_id} (claim key {key})")
    subscription = ctx.bus.subscribe(SUBSCRIPTION)
    if not subscription.pushed_by_platform:
        LocalRuntime(ctx, apps, subscription=subscription, progress=say).run_until_idle(timeout=timeout)
    elif not serving:  # nobody is subscribed right now: deliver the message as the push subscription would
        message = Message(message_id, json.dumps(payload).encode(), attributes, datetime.now(UTC))
        status, body = apps.deliver(
            "transform", pubsub_published(message, ctx.bus.topic, f"projects/{PROJECT}/subscriptions/{SUBSCRIPTION}")
        )
        if status >= 300:
            raise ReplayError(f"transform failed (HTTP {status}): {body[-300:]}")
    deadline = time.monotonic() + timeout
    while True:
        runs = [r for r in ctx.warehouse.runs() if r["batch_id"] == batch_id and r["claim_key"] == key]
        if runs and runs[-1]["state"] not in ("running", "started"):
            break
        if time.monotonic() > deadline:
            raise ReplayError(f"the replay transform of {batch_id} did not finish in {timeout:.0f} s")
        time.sleep(0.5)
    report = collect(ctx)
    ledger_after = _ledger(ctx, batch_id)
    context.use(None)
    return {
        "batch_id": batch_id,
        "claim_key": key,
        "loads": loads,
        "ledger_before": ledger_before,
        "ledger_after": ledger_after,
        "transform": runs[-1],
        "warehouse": report["warehouse"],
    }
