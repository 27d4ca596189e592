"""The three stages as plain typed functions; the Cloud Function entry points only call these.

Retry policy on purpose: a transient failure raises (the platform redelivers the event); a
permanent one (a bad file, an object that is not ours) is recorded and returns normally, and an
event that can never succeed raises :class:`PermanentEventError`, which the entry points log
with the event id and acknowledge (see :func:`retail_pipeline.events.acknowledge`).
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from . import context
from .events import PermanentEventError
from .faults import maybe_crash
from .ingest import IngestResult, ingest_object
from .lake import MANIFEST_PREFIX, QUARANTINE_PREFIX, REJECTED_PREFIX, SALES_PREFIX, batch_id_for, write_manifest
from .ports import BatchProgress, LoadRequest
from .reader import RejectedInput, check_object_size

log = logging.getLogger(__name__)


def ingest_landing_object(bucket_name: str, object_name: str, generation: int) -> dict:
    """Ingest one finalized landing object into the lake; returns what happened."""
    ctx = context.get()
    maybe_crash(ctx.settings.faults, "ingest.start", f"{object_name}#{generation}")
    landing, lake = ctx.landing, ctx.lake
    if bucket_name != landing.bucket:
        raise PermanentEventError(
            f"event for bucket {bucket_name!r}, but this function's landing bucket is {landing.bucket!r}"
        )
    if object_name.startswith(REJECTED_PREFIX) or object_name.endswith("/"):
        return {"status": "ignored", "reason": "not a landing file", "object": object_name}
    info = landing.stat(object_name)
    if info is None:
        return {"status": "ignored", "reason": "object no longer exists", "object": object_name}
    if info.generation > generation:
        return {
            "status": "ignored",
            "reason": f"generation {generation} was replaced by {info.generation}",
            "object": object_name,
        }
    if info.generation < generation:
        raise RuntimeError(f"{object_name}: generation {generation} not visible yet (have {info.generation}); retry")
    source_uri = landing.uri(object_name)
    limits = ctx.settings.limits
    try:
        check_object_size(info.size, limits)  # before downloading it
    except RejectedInput as exc:
        result = IngestResult(
            batch_id_for(source_uri, generation),
            source_uri,
            generation,
            "rejected",
            error=str(exc),
            error_code=exc.code,
        )
        write_manifest(lake, result)
    else:
        with tempfile.TemporaryDirectory(prefix="landing-") as tmp:
            path = landing.download(object_name, Path(tmp))
            result = ingest_object(path, object_name, source_uri, generation, lake, limits, faults=ctx.settings.faults)
    log.info(
        "ingested %s: %s",
        source_uri,
        result.state,
        extra={"batch_id": result.batch_id, "rows_read": result.rows_read, "rows_loaded": result.rows_loaded},
    )
    if result.state == "rejected":
        report = {
            "object": object_name,
            "generation": generation,
            "batch_id": result.batch_id,
            "reason": result.error_code,
            "error": result.error,
        }
        landing.put(
            rejection_report_name(object_name, generation),
            json.dumps(report, indent=2).encode(),
            content_type="application/json",
        )
    return {
        "status": result.state,
        "batch_id": result.batch_id,
        "error": result.error,
        "rows": {
            "read": result.rows_read,
            "loaded": result.rows_loaded,
            "quarantined": result.rows_quarantined,
            "duplicates": result.rows_duplicate,
        },
        "partitions": len(result.partitions),
        "seconds": result.seconds,
    }


def rejection_report_name(object_name: str, generation: int) -> str:
    """``rejected/<name>.<generation>.error.json``; a very long name is shortened with a hash."""
    import hashlib

    head, _, last = object_name.rpartition("/")
    if len(last.encode()) > 180:
        last = f"{last[:100]}-{hashlib.sha1(object_name.encode()).hexdigest()[:12]}"
    return f"{REJECTED_PREFIX}{head + '/' if head else ''}{last}.{generation}.error.json"


KINDS = {SALES_PREFIX: "sales", QUARANTINE_PREFIX: "quarantine", MANIFEST_PREFIX: "manifest"}


def lake_object_kind(object_name: str) -> str | None:
    for prefix, kind in KINDS.items():
        if object_name.startswith(prefix) and object_name.endswith((".parquet", ".json")):
            return kind
    return None


def load_lake_object(bucket_name: str, object_name: str, generation: int) -> dict:
    """Load one finalized lake object into its raw table (exactly-once effect), then publish."""
    ctx = context.get()
    maybe_crash(ctx.settings.faults, "load.start", f"{object_name}#{generation}")
    lake = ctx.lake
    if bucket_name != lake.bucket:
        raise PermanentEventError(
            f"event for bucket {bucket_name!r}, but this function's lake bucket is {lake.bucket!r}"
        )
    kind = lake_object_kind(object_name)
    if kind is None:
        return {"status": "ignored", "reason": "not partition data or a manifest", "object": object_name}
    info = lake.stat(object_name)
    if info is None:
        return {"status": "ignored", "reason": "object no longer exists", "object": object_name}
    missing = [k for k in LoadRequest.METADATA if k not in info.metadata]
    if missing:
        log.error("lake object %s lacks metadata %s; not loaded", object_name, missing)
        return {"status": "ignored", "reason": f"object metadata lacks {missing}", "object": object_name}
    request = LoadRequest.for_object(kind, info, lake.uri(object_name))
    result = ctx.warehouse.load_object(request)
    log.info("load %s: %s", object_name, result.status, extra={"batch_id": request.batch_id, "rows": result.rows})
    maybe_crash(ctx.settings.faults, "load.publish", f"{object_name}#{info.generation}")
    payload = {
        "batch_id": request.batch_id,
        "source_uri": request.source_uri,
        "source_generation": request.source_generation,
        "kind": kind,
        "partition": request.partition,
        "rows": result.rows,
        "status": result.status,
    }
    message_id = ctx.bus.publish(
        json.dumps(payload).encode(),
        {
            "batch_id": request.batch_id,
            "source": request.source_uri,
            "partition": request.partition or kind,
            "rows": str(result.rows),
            "kind": kind,
        },
    )
    return {**payload, "message_id": message_id}


def transform_batch(batch_id: str, claim_key: str = "initial") -> dict[str, Any]:
    """Fan-in: when every object of the batch is loaded, run the transformation once.

    The run also takes every other batch that is complete and not yet claimed, so twenty files
    dropped at once cost one or a few dbt runs, not twenty; each batch is still claimed exactly once.
    Every claim taken here is released again on any failure before the run is recorded, so the
    platform's retry can take it.
    """
    ctx = context.get()
    maybe_crash(ctx.settings.faults, "transform.start", batch_id)
    warehouse = ctx.warehouse
    progress = warehouse.batch_progress(batch_id)
    if progress.superseded:
        return {"status": "superseded", "batch_id": batch_id}
    if not progress.complete:
        waiting = sorted(
            f"{k}:{p}" for (k, p), rows in progress.expected.items() if progress.loaded.get((k, p)) != rows
        )
        return {
            "status": "waiting",
            "batch_id": batch_id,
            "manifest_loaded": progress.manifest_loaded,
            "waiting_for": waiting,
        }
    if progress.state == "rejected":
        return {"status": "rejected", "batch_id": batch_id}
    # a build still running (a Cloud Run execution): retried later, having claimed nothing, so this
    # message cannot keep its batch from the next build. Asked only now: a message of a batch still
    # loading is acknowledged as waiting, not sent back (every message sent back slows Pub/Sub's push)
    ctx.transformer.ensure_idle()
    if not warehouse.claim_transform(batch_id, claim_key):
        return {"status": "already_claimed", "batch_id": batch_id}
    claimed: dict[str, BatchProgress] = {batch_id: progress}
    try:
        maybe_crash(ctx.settings.faults, "transform.after_claim", batch_id)
        if claim_key == "initial":
            for other in warehouse.claimable_batches(exclude=batch_id):
                if warehouse.claim_transform(other.batch_id, "initial"):
                    claimed[other.batch_id] = other
        partitions = sorted({p for pr in claimed.values() for p in pr.partitions})
        result = ctx.transformer.run(sorted(claimed), partitions, claim_key)
        for claimed_id in claimed:
            warehouse.finish_transform(claimed_id, claim_key, result)
    except BaseException:
        for claimed_id in claimed:  # transient: let the retries claim them again
            warehouse.release_transform(claimed_id, claim_key)
        raise
    log.info(
        "transform %s: %s",
        batch_id,
        result.status,
        extra={
            "batch_id": batch_id,
            "stage": "transform",
            "status": result.status,
            "tests_failed": result.tests_failed,
        },
    )
    published = None
    if ctx.settings.reports and result.status == "success":  # built here (the dbt job writes its own report)
        from .report.publish import report_after_build  # openpyxl and pandas: only where reports are on

        published = report_after_build(ctx, sorted(claimed), claim_key, result, partitions)
    return {
        "status": result.status,
        "batch_id": batch_id,
        "batches": sorted(claimed),
        "tests_passed": result.tests_passed,
        "tests_failed": result.tests_failed,
        "models_built": result.models_built,
        "error": result.error,
        "execution": result.execution,
        "report": published.uri if published else None,
    }
