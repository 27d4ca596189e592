"""The lake's layout: where a batch's objects go, what they are called, and its manifests.

One landing object generation is one batch. Its objects::

    sales/month=YYYY-MM/<batch_id>.parquet     typed, deduplicated lines of one invoice month
    quarantine/<batch_id>.parquet              rows that failed a rule, with the reason
    manifests/<batch_id>.json                  the batch's outcome, written last

Every object name carries the batch id, which is derived from the landing object and its
generation: a retry of the same event rewrites the same objects. A rejected landing file also
gets a report under ``rejected/`` in the landing bucket. The manifest is written after every
other object of its batch, so a reader that goes by manifests never sees half a batch.

Imports nothing heavy: the stages and the status command use it without pyarrow.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any, Protocol

from .ports import ObjectStore

SALES_PREFIX = "sales/"
QUARANTINE_PREFIX = "quarantine/"
MANIFEST_PREFIX = "manifests/"
REJECTED_PREFIX = "rejected/"
PARQUET_CONTENT_TYPE = "application/vnd.apache.parquet"


def batch_id_for(source_uri: str, generation: int) -> str:
    """Deterministic batch id: the same landing object generation always gets the same id."""
    return hashlib.sha256(f"{source_uri}#{generation}".encode()).hexdigest()[:16]


def sales_object_name(month: str, batch_id: str) -> str:
    """The lake object of one month partition ('YYYY-MM') of a batch."""
    return f"{SALES_PREFIX}month={month}/{batch_id}.parquet"


def quarantine_object_name(batch_id: str) -> str:
    return f"{QUARANTINE_PREFIX}{batch_id}.parquet"


def manifest_object_name(batch_id: str) -> str:
    return f"{MANIFEST_PREFIX}{batch_id}.json"


def object_metadata(
    batch_id: str, source_uri: str, source_generation: int, kind: str, partition: str, rows: int
) -> dict[str, str]:
    """The custom metadata every lake object carries (the load stage reads it before the data)."""
    return {
        "batch_id": batch_id,
        "source_uri": source_uri,
        "source_generation": str(source_generation),
        "kind": kind,
        "partition": partition,
        "rows": str(rows),
    }


class ManifestRecord(Protocol):
    """What a manifest is written from (ingest.IngestResult)."""

    batch_id: str
    source_uri: str
    source_generation: int
    ingested_at: str

    def manifest(self) -> dict[str, Any]: ...


def write_manifest(lake: ObjectStore, result: ManifestRecord) -> str:
    """Write the batch manifest (last object of a batch); stamps ingested_at if the caller did not."""
    if not result.ingested_at:
        result.ingested_at = datetime.now(UTC).isoformat()
    name = manifest_object_name(result.batch_id)
    lake.put(
        name,
        json.dumps(result.manifest(), indent=2).encode(),
        content_type="application/json",
        metadata=object_metadata(result.batch_id, result.source_uri, result.source_generation, "manifest", "", 1),
    )
    return name


def read_manifest(lake: ObjectStore, batch_id: str) -> dict[str, Any] | None:
    """A batch's manifest, or None when the batch has none (yet)."""
    info = lake.stat(manifest_object_name(batch_id))
    return json.loads(lake.read_bytes(info.name)) if info else None


def list_manifests(lake: ObjectStore) -> list[dict[str, Any]]:
    """Every manifest in the lake."""
    return [
        json.loads(lake.read_bytes(info.name)) for info in lake.list(MANIFEST_PREFIX) if info.name.endswith(".json")
    ]
