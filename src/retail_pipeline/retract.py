"""Mistakes undone: take a source back out of the warehouse, and re-apply today's rules.

- :func:`retract`: removes every batch of a source (all its generations) from the raw tables in
  one transaction (Warehouse.retract: the ledger rows stay, so a redelivered event never loads it
  again; an audit row per batch goes to ``pipeline.retractions``), keeps the lake files, then
  rebuilds the invoice months it touched with one transform run (the fact is incremental by month:
  the months travel in the dbt var ``partitions``, as for a batch), so the marts no longer count it.
- :func:`landing_object_removed`: the load function's answer to the landing bucket's
  ``object.v1.archived`` event (a person deleted the workbook): retract, unless a live generation
  exists (an overwrite archives the old generation too; the new one supersedes it instead), then
  ask the transform for the rebuild; a redelivered event asks again when no rebuild was claimed
  (the first delivery failed between its commit and its message).
- :func:`reprocess`: rewrites matching landing objects, so each is ingested again under today's
  rules as a new batch that supersedes the old one.
"""

from __future__ import annotations

import fnmatch
import getpass
import json
import logging
import time
import uuid
from datetime import UTC, date, datetime
from typing import Any

from . import context
from .cloudrun import JobBusy
from .context import Context
from .events import PermanentEventError
from .faults import maybe_crash
from .lake import REJECTED_PREFIX, batch_id_for
from .ports import RetractResult, TransformResult

log = logging.getLogger(__name__)


def whoami(ctx: Context) -> str:
    """Who acts: the service identity of this process, else the OS user."""
    if ctx.settings.identity:
        return ctx.settings.identity
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def rebuild(ctx: Context, batch_ids: list[str], partitions: list[str], claim_key: str) -> TransformResult | None:
    """One transform run over ``partitions`` after a retraction, recorded under ``claim_key`` on the
    retracted batches (exactly once per key: None when another delivery already took it)."""
    warehouse = ctx.warehouse
    ctx.transformer.ensure_idle()  # a build still running: JobBusy, before anything is claimed
    if not warehouse.claim_transform(batch_ids[0], claim_key):
        return None
    claimed = [batch_ids[0]] + [b for b in batch_ids[1:] if warehouse.claim_transform(b, claim_key)]
    try:
        result = ctx.transformer.run(claimed, partitions, claim_key)
        for batch_id in claimed:
            warehouse.finish_transform(batch_id, claim_key, result)
    except BaseException:
        for batch_id in claimed:
            warehouse.release_transform(batch_id, claim_key)
        raise
    return result


RETRACT_KIND = "retract"  #: message kind: rebuild the months of a retraction (the transform function runs it)
RETRACT_CLAIM_PREFIX = "retract-"  #: claim keys of the rebuilds after retractions
BUSY_WAIT_SECONDS = 1800.0  #: how long `retract` waits for a running dbt build before its own rebuild


def rebuild_when_free(
    ctx: Context, batch_ids: list[str], partitions: list[str], claim_key: str, *, wait: float = BUSY_WAIT_SECONDS
) -> TransformResult | None:
    """:func:`rebuild`, waiting while another build of the models runs (one build at a time on the
    Cloud Run path: the job answers busy). The retraction is already committed, so giving up early
    would leave the marts counting rows the raw tables no longer hold."""
    deadline = time.monotonic() + wait
    delay = 2.0
    while True:
        try:
            return rebuild(ctx, batch_ids, partitions, claim_key)
        except JobBusy as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.info(
                "rebuild after the retraction waits: %s", exc, extra={"batch_id": batch_ids[0], "stage": "retract"}
            )
            time.sleep(delay)
            delay = min(2 * delay, 30.0)


def _outcome(result: RetractResult, run: TransformResult | None, claim_key: str | None) -> dict[str, Any]:
    return {
        "target": result.target,
        "batch_ids": result.batch_ids,
        "source_uris": result.source_uris,
        "rows_removed": result.rows_removed,
        "quarantine_removed": result.quarantine_removed,
        "partitions": result.partitions,
        "claim_key": claim_key,
        "transform": None
        if run is None
        else {
            "status": run.status,
            "tests_passed": run.tests_passed,
            "tests_failed": run.tests_failed,
            "error": run.error,
            "execution": run.execution,
        },
    }


def retract(ctx: Context, target: str, *, why: str = "", who: str | None = None) -> dict[str, Any]:
    """Retract ``target`` (a source URI or a batch id) and rebuild the months it touched, here and now.
    Raises LookupError when the warehouse knows no batch of it; retracting twice removes nothing more."""
    result = ctx.warehouse.retract(target, who=who or whoami(ctx), why=why)
    if not result.batch_ids:
        return _outcome(result, None, None)
    key = f"{RETRACT_CLAIM_PREFIX}{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
    run = rebuild_when_free(ctx, result.batch_ids, result.partitions, key)
    log.info(
        "retracted %s: %d batches, %d rows",
        target,
        len(result.batch_ids),
        result.rows_removed,
        extra={"batch_id": result.batch_ids[0], "stage": "retract"},
    )
    return _outcome(result, run, key)


def landing_object_removed(bucket_name: str, object_name: str, generation: int) -> dict[str, Any]:
    """A landing object generation was archived (deleted, or overwritten). Retract its source when no
    live generation is left, and ask the transform (a bus message) to rebuild the months it touched."""
    ctx = context.get()
    landing = ctx.landing
    if bucket_name != landing.bucket:
        raise PermanentEventError(
            f"event for bucket {bucket_name!r}, but this function's landing bucket is {landing.bucket!r}"
        )
    if object_name.startswith(REJECTED_PREFIX) or object_name.endswith("/"):
        return {"status": "ignored", "reason": "not a landing file", "object": object_name}
    live = landing.stat(object_name)
    if live is not None:
        return {
            "status": "ignored",
            "reason": f"generation {live.generation} is live (an overwrite, not a deletion)",
            "object": object_name,
        }
    uri = landing.uri(object_name)
    try:
        result = ctx.warehouse.retract(
            uri,
            who=f"{whoami(ctx)} (landing object deleted)",
            why=f"{uri} generation {generation} was deleted from the landing bucket",
        )
    except LookupError:
        return {"status": "ignored", "reason": "no batch of it is in the warehouse", "object": object_name}
    key = f"{RETRACT_CLAIM_PREFIX}{batch_id_for(uri, generation)}"  # one rebuild per archived generation
    batch_ids, partitions = result.batch_ids, result.partitions
    if not batch_ids:
        # an earlier delivery of this event (or `retract`) removed the rows; if no rebuild was asked for
        # (that delivery failed between its commit and its message), ask now: the rebuild finds the
        # months itself (fact months holding lines of batches no longer in raw.batches)
        batch_ids, partitions = never_rebuilt(ctx, uri), []
        if not batch_ids:
            return {"status": "already_retracted", "object": object_name}
    maybe_crash(ctx.settings.faults, "retract.publish", f"{object_name}#{generation}")
    payload = {"batch_ids": batch_ids, "partitions": partitions, "source_uri": uri}
    ctx.bus.publish(json.dumps(payload).encode(), {"batch_id": batch_ids[0], "replay": key, "kind": RETRACT_KIND})
    log.info(
        "retracted %s (deleted): %d rows",
        uri,
        result.rows_removed,
        extra={"batch_id": batch_ids[0], "stage": "retract"},
    )
    status = "retracted" if result.batch_ids else "rebuild_requested"
    return {"status": status, **_outcome(result, None, key), "batch_ids": batch_ids, "partitions": partitions}


def never_rebuilt(ctx: Context, source_uri: str) -> list[str]:
    """Retracted batches of the source for which no rebuild was ever claimed (a released claim, one
    whose job was busy, is gone again: the message that asked for it is still being redelivered)."""
    retracted = ctx.warehouse.retracted_batches()
    return sorted(
        r.batch_id
        for r in ctx.warehouse.batch_records()
        if r.source_uri == source_uri
        and r.batch_id in retracted
        and not (r.run and str(r.run["claim_key"]).startswith(RETRACT_CLAIM_PREFIX))
    )


def rebuild_from_message(data: dict[str, Any], attributes: dict[str, str]) -> dict[str, Any]:
    """The transform function's handling of a retraction message: one rebuild per claim key."""
    ctx = context.get()
    batch_ids = [str(b) for b in data.get("batch_ids") or [attributes.get("batch_id", "")] if b]
    if not batch_ids or "replay" not in attributes:
        raise PermanentEventError("a retraction message needs batch_ids and a claim key (replay attribute)")
    run = rebuild(ctx, batch_ids, [str(p) for p in data.get("partitions") or []], attributes["replay"])
    if run is None:
        return {"status": "already_claimed", "batch_id": batch_ids[0]}
    return {
        "status": run.status,
        "batch_id": batch_ids[0],
        "batches": batch_ids,
        "tests_failed": run.tests_failed,
        "error": run.error,
        "execution": run.execution,
    }


def reprocess(
    ctx: Context, *, since: date | None = None, source: str | None = None, dry_run: bool = False
) -> list[dict[str, Any]]:
    """Rewrite the landing objects (not ``rejected/`` reports) last written on or after ``since`` whose
    name or URI matches the glob ``source``: each new generation is ingested with today's rules and
    supersedes the batches of the older ones. Returns what was (or would be) rewritten."""
    done = []
    for info in list(ctx.landing.list()):
        if info.name.startswith(REJECTED_PREFIX) or info.name.endswith("/"):
            continue
        uri = ctx.landing.uri(info.name)
        if source and not (fnmatch.fnmatchcase(info.name, source) or fnmatch.fnmatchcase(uri, source)):
            continue
        if since and info.updated.date() < since:
            continue
        new = None if dry_run else ctx.landing.rewrite(info.name)
        done.append(
            {"object": info.name, "old_generation": info.generation, "new_generation": new.generation if new else None}
        )
    return done
