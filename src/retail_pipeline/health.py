"""Failures are seen: what in a home needs attention, and what to do about each.

``retail-pipeline status`` lists these; ``status --check`` exits non-zero when there is any (cron).
Everything is read from the warehouse's batches and runs (status.collect), the lake's manifests and
the bus's dead letters; nothing is changed.

- a dead-lettered message whose batch is not (yet) in a good final state;
- a stuck batch: loading, loaded but never claimed, or transforming for longer than the grace period;
- a failed transform run (the batch's latest run), and a failed last dbt run of any kind;
- a rejected file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .context import Context
from .lake import MANIFEST_PREFIX
from .pipeline import SUBSCRIPTION
from .status import GOOD_FINAL_STATES
from .sweep import parse_time


@dataclass(frozen=True)
class Attention:
    kind: str  #: 'dead_letter', 'stuck_batch', 'failed_run', 'rejected'
    subject: str  #: batch id or message id
    detail: str
    todo: str  #: what to do about it


def _stuck_since(ctx: Context, batch: dict[str, Any]) -> datetime | None:
    """When a batch's current step began: its run's claim, else its ingest (the manifest row, or the
    manifest object in the lake when the row never arrived)."""
    if batch["state"] == "transforming":
        return parse_time(batch.get("run_started_at"))
    if batch.get("ingested_at"):
        return parse_time(batch["ingested_at"])
    info = ctx.lake.stat(f"{MANIFEST_PREFIX}{batch['batch_id']}.json")
    return info.updated if info else None


def attention(
    ctx: Context, report: dict[str, Any], *, grace_seconds: int | None = None, now: datetime | None = None
) -> list[Attention]:
    """What needs attention in the home ``report`` (a status.collect report) describes."""
    now = now or datetime.now(UTC)
    grace = timedelta(seconds=ctx.settings.sweep_grace_seconds if grace_seconds is None else grace_seconds)
    states = {b["batch_id"]: b["state"] for b in report["batches"]}
    out: list[Attention] = []
    for message in ctx.bus.subscribe(SUBSCRIPTION).dead_letters():
        batch_id = message.attributes.get("batch_id") or json.loads(message.data or b"{}").get("batch_id", "")
        if states.get(batch_id) in GOOD_FINAL_STATES:
            continue  # the batch got through since (a replay, a sweep or a later message)
        out.append(
            Attention(
                "dead_letter",
                message.message_id,
                f"message for batch {batch_id or '?'} dead-lettered after "
                f"{message.delivery_attempt} deliveries ({message.attributes.get('kind', 'message')})",
                f"retail-pipeline replay {batch_id} --messages-only"
                if batch_id
                else "read the message in the bus's dead-letter folder",
            )
        )
    for b in report["batches"]:
        state, batch_id = b["state"], b["batch_id"]
        if state == "transform_failed":
            out.append(
                Attention(
                    "failed_run",
                    batch_id,
                    f"dbt failed: {(b.get('error') or '').strip()[:300]}",
                    f"fix the cause (see the error and HOME/logs), then retail-pipeline replay {batch_id}",
                )
            )
        elif state == "rejected":
            out.append(
                Attention(
                    "rejected",
                    batch_id,
                    f"{b['source']} was rejected: {b.get('error') or ''}"[:400],
                    "fix the file and drop it again under the same name (retail-pipeline drop FILE "
                    f"--name NAME), or dismiss it: retail-pipeline retract {batch_id} --why TEXT",
                )
            )
        elif state in ("ingested", "loading", "loaded", "transforming"):
            since = _stuck_since(ctx, b)
            if since is not None and now - since >= grace:
                minutes = int((now - since).total_seconds() // 60)
                todo = (
                    f"retail-pipeline sweep (re-drives it), or retail-pipeline replay {batch_id}"
                    if state != "transforming"
                    else f"retail-pipeline sweep (starts a new run), or retail-pipeline replay {batch_id}"
                )
                out.append(Attention("stuck_batch", batch_id, f"{state} for {minutes} min ({b['source']})", todo))
    dbt = report["dbt"]
    if dbt["status"] == "failed" and not any(a.kind == "failed_run" and a.subject == dbt.get("batch_id") for a in out):
        out.append(
            Attention(
                "failed_run",
                dbt.get("batch_id") or "?",
                f"the last dbt run failed: {(dbt.get('error') or '').strip()[:300]}",
                f"fix the cause, then retail-pipeline replay {dbt.get('batch_id')}",
            )
        )
    return out


def as_dicts(items: list[Attention]) -> list[dict[str, str]]:
    return [asdict(a) for a in items]


def render(items: list[Attention]) -> str:
    if not items:
        return "attention: nothing needs attention"
    lines = [f"attention: {len(items)} item(s) need attention"]
    for a in items:
        lines.append(f"  {a.kind:<12} {a.subject}: {a.detail}\n    do: {a.todo}")
    return "\n".join(lines)
