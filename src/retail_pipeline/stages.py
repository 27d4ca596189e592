"""The three stages as plain typed functions; the Cloud Function entry points only call these.

Retry policy on purpose: a transient failure raises (the platform redelivers the event); a
permanent one (a bad file, an object that is not ours) is recorded and returns normally.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

from . import context, faults
from .ingest import ingest_object
from .lake import MANIFEST_PREFIX, QUARANTINE_PREFIX, REJECTED_PREFIX, SALES_PREFIX
from .ports import LoadRequest

log = logging.getLogger(__name__)


def ingest_landing_object(bucket_name: str, object_name: str, generation: int) -> dict:
    """Ingest one finalized landing object into the lake; returns what happened."""
    ctx = context.get()
    faults.maybe_crash("ingest.start", f"{object_name}#{generation}")
    landing, lake = ctx.landing, ctx.lake
    if bucket_name != landing.bucket:
        raise ValueError(f"event for bucket {bucket_name!r}, but this function's landing bucket is {landing.bucket!r}")
    if object_name.startswith(REJECTED_PREFIX) or object_name.endswith("/"):
        return {"status": "ignored", "reason": "not a landing file", "object": object_name}
    info = landing.stat(object_name)
    if info is None:
        return {"status": "ignored", "reason": "object no longer exists", "object": object_name}
    if info.generation > generation:
        return {"status": "ignored", "reason": f"generation {generation} was replaced by {info.generation}",
                "object": object_name}
    if info.generation < generation:
        raise RuntimeError(f"{object_name}: generation {generation} not visible yet (have {info.generation}); retry")
    source_uri = landing.uri(object_name)
    limits = ctx.settings.limits
    if info.size > limits.max_object_bytes:
        from .ingest import IngestResult
        from .lake import batch_id_for, write_manifest

        result = IngestResult(batch_id_for(source_uri, generation), source_uri, generation, "rejected",
                              error=f"object is {info.size:,} bytes; the limit is {limits.max_object_bytes:,}",
                              error_code="object_too_large")
        write_manifest(lake, result)
    else:
        with tempfile.TemporaryDirectory(prefix="landing-") as tmp:
            path = landing.download(object_name, Path(tmp))
            result = ingest_object(path, object_name, source_uri, generation, lake, limits)
    log.info("ingested %s: %s", source_uri, result.state,
             extra={"batch_id": result.batch_id, "rows_read": result.rows_read, "rows_loaded": result.rows_loaded})
    if result.state == "rejected":
        report = {"object": object_name, "generation": generation, "batch_id": result.batch_id,
                  "reason": result.error_code, "error": result.error}
        landing.put(rejection_report_name(object_name, generation), json.dumps(report, indent=2).encode(),
                    content_type="application/json")
    return {"status": result.state, "batch_id": result.batch_id, "error": result.error,
            "rows": {"read": result.rows_read, "loaded": result.rows_loaded, "quarantined": result.rows_quarantined,
                     "duplicates": result.rows_duplicate}, "partitions": len(result.partitions),
            "seconds": result.seconds}


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
    faults.maybe_crash("load.start", f"{object_name}#{generation}")
    lake = ctx.lake
    if bucket_name != lake.bucket:
        raise ValueError(f"event for bucket {bucket_name!r}, but this function's lake bucket is {lake.bucket!r}")
    kind = lake_object_kind(object_name)
    if kind is None:
        return {"status": "ignored", "reason": "not partition data or a manifest", "object": object_name}
    info = lake.stat(object_name)
    if info is None:
        return {"status": "ignored", "reason": "object no longer exists", "object": object_name}
    meta = info.metadata
    missing = [k for k in ("batch_id", "source_uri", "source_generation", "rows") if k not in meta]
    if missing:
        log.error("lake object %s lacks metadata %s; not loaded", object_name, missing)
        return {"status": "ignored", "reason": f"object metadata lacks {missing}", "object": object_name}
    warehouse = ctx.warehouse
    with tempfile.TemporaryDirectory(prefix="lake-") as tmp:
        local = None
        if getattr(warehouse, "reads_local_files", True):
            local = lake.download(object_name, Path(tmp))
        request = LoadRequest(
            kind=kind, object_uri=lake.uri(object_name), local_path=local, object_generation=info.generation,
            batch_id=meta["batch_id"], source_uri=meta["source_uri"], source_generation=int(meta["source_generation"]),
            partition=meta.get("partition", ""), rows=int(meta["rows"]),
        )
        result = warehouse.load_object(request)
    log.info("load %s: %s", object_name, result.status, extra={"batch_id": request.batch_id, "rows": result.rows})
    faults.maybe_crash("load.publish", f"{object_name}#{info.generation}")
    payload = {"batch_id": request.batch_id, "source_uri": request.source_uri,
               "source_generation": request.source_generation, "kind": kind, "partition": request.partition,
               "rows": result.rows, "status": result.status}
    message_id = ctx.bus.publish(
        json.dumps(payload).encode(),
        {"batch_id": request.batch_id, "source": request.source_uri, "partition": request.partition or kind,
         "rows": str(result.rows), "kind": kind},
    )
    return {**payload, "message_id": message_id}


def transform_batch(batch_id: str, claim_key: str = "initial") -> dict:
    """Fan-in: when every object of the batch is loaded, run the transformation once.

    The run also takes every other batch that is complete and not yet claimed, so twenty files
    dropped at once cost one or a few dbt runs, not twenty; each batch is still claimed exactly once.
    """
    ctx = context.get()
    faults.maybe_crash("transform.start", batch_id)
    progress = ctx.warehouse.batch_progress(batch_id)
    if progress.superseded:
        return {"status": "superseded", "batch_id": batch_id}
    if not progress.complete:
        waiting = sorted(f"{k}:{p}" for (k, p), rows in progress.expected.items() if progress.loaded.get((k, p)) != rows)
        return {"status": "waiting", "batch_id": batch_id, "manifest_loaded": progress.manifest_loaded,
                "waiting_for": waiting}
    if progress.state == "rejected":
        return {"status": "rejected", "batch_id": batch_id}
    if not ctx.warehouse.claim_transform(batch_id, claim_key):
        return {"status": "already_claimed", "batch_id": batch_id}
    claimed = {batch_id: progress}
    if claim_key == "initial":
        claimed.update(_claim_other_complete_batches(ctx, exclude=batch_id))
    partitions = sorted({p for pr in claimed.values() for k, p in pr.expected if k == "sales"})
    try:
        result = ctx.transformer.run(batch_id, partitions)
    except BaseException:
        for claimed_id in claimed:  # transient: let the retries claim them again
            ctx.warehouse.release_transform(claimed_id, claim_key)
        raise
    for claimed_id in claimed:
        ctx.warehouse.finish_transform(claimed_id, claim_key, result)
    log.info("transform %s: %s", batch_id, result.status,
             extra={"batch_id": batch_id, "tests_failed": result.tests_failed, "stage": "transform"})
    return {"status": result.status, "batch_id": batch_id, "batches": sorted(claimed),
            "tests_passed": result.tests_passed, "tests_failed": result.tests_failed,
            "models_built": result.models_built, "error": result.error}


def _claim_other_complete_batches(ctx, exclude: str) -> dict:
    """Claim the other ingested batches that are completely loaded and have no transform run yet."""
    from .lake import list_manifests

    claimed_before = {run["batch_id"] for run in ctx.warehouse.status()["runs"]}
    out = {}
    for manifest in list_manifests(ctx.lake):
        other = manifest["batch_id"]
        if other == exclude or other in claimed_before or manifest["state"] != "ingested":
            continue
        progress = ctx.warehouse.batch_progress(other)
        if progress.complete and progress.state == "ingested" and ctx.warehouse.claim_transform(other, "initial"):
            out[other] = progress
    return out
