"""The ports the logic talks to. Each has an embedded and a cloud adapter (see adapters/ and
docs/architecture.md); every adapter answers every call, a no-op where nothing is needed, so no
code ever asks an adapter what it is."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import pandas
    import pyarrow


class PreconditionFailed(Exception):
    """A conditional write lost: the object's generation was not the one the caller required."""


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object generation, as a storage finalize event describes it."""

    bucket: str
    name: str
    generation: int
    size: int
    updated: datetime
    content_type: str = "application/octet-stream"
    md5_hash: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


class ObjectStore(Protocol):
    """A bucket: local folder or Cloud Storage."""

    bucket: str  #: bucket name as events carry it

    def provision(self) -> None:
        """Create the bucket where the platform does not (Terraform does in GCP)."""

    def uri(self, name: str) -> str:
        """Address of an object: gs://bucket/name or file:///path."""

    def put(
        self,
        name: str,
        data: bytes | Path,
        *,
        content_type: str = ...,
        metadata: dict[str, str] | None = None,
        if_generation_match: int | None = None,
    ) -> ObjectInfo:
        """Write one object atomically (readers see the old or the new generation, never a part).
        ``if_generation_match=0`` creates it only if absent, else raises :class:`PreconditionFailed`."""

    def stat(self, name: str) -> ObjectInfo | None:
        """The live generation of an object, or None."""

    def read_bytes(self, name: str) -> bytes: ...

    def download(self, name: str, folder: Path) -> Path:
        """A local file holding the object: the object itself for folders, a copy in `folder` otherwise."""

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...

    def delete(self, name: str) -> None: ...

    def rewrite(self, name: str) -> ObjectInfo:
        """A new generation of the object with the same bytes, content type and metadata, so the
        platform's finalize event delivers it again (the sweep's and reprocess's re-drive)."""


@dataclass(frozen=True)
class Message:
    """A published message as the subscriber receives it."""

    message_id: str
    data: bytes
    attributes: dict[str, str]
    publish_time: datetime
    delivery_attempt: int = 1


class Subscription(Protocol):
    """The transform's subscription to the topic: what a local dispatcher needs from it.

    A platform that pushes by itself (Pub/Sub push) hands out nothing to pull; the spool bus hands
    out due messages, takes acks and nacks, redelivers with backoff and dead-letters."""

    name: str  #: projects/P/subscriptions/S
    pushed_by_platform: bool  #: True when the platform delivers to the endpoint itself

    def pull(self, max_messages: int = 100) -> list[Message]: ...

    def ack(self, message_id: str) -> None: ...

    def nack(self, message_id: str) -> None: ...

    def is_dead_lettered(self, message_id: str) -> bool: ...

    def dead_letters(self) -> list[Message]: ...

    def next_due_in(self) -> float | None:
        """Seconds until the next pending message is due; None when nothing is pending."""


class MessageBus(Protocol):
    """A topic: the local spool or Pub/Sub."""

    topic: str  #: projects/P/topics/T

    def provision(self) -> None:
        """Create the topic where the platform does not."""

    def publish(self, data: bytes, attributes: dict[str, str]) -> str:
        """Publish once; returns the message id. Delivery is at least once."""

    def subscribe(self, name: str, push_endpoint: str | None = None) -> Subscription:
        """The subscription ``name``; with ``push_endpoint``, one that pushes there (where the bus can)."""


@dataclass(frozen=True)
class LoadRequest:
    """One lake object to load, with the keys that make the load idempotent."""

    kind: str  #: 'sales', 'quarantine' or 'manifest'
    object_name: str  #: name in the lake bucket
    object_uri: str
    object_generation: int
    batch_id: str
    source_uri: str
    source_generation: int
    partition: str  #: 'YYYY-MM' for sales, '' otherwise
    rows: int  #: rows the object holds, from the ingest manifest metadata

    METADATA = ("batch_id", "source_uri", "source_generation", "rows")  #: what every lake object carries

    @classmethod
    def for_object(cls, kind: str, info: ObjectInfo, uri: str) -> LoadRequest:
        """The request for a lake object; its metadata (written by ingest) holds the keys."""
        meta = info.metadata
        return cls(
            kind=kind,
            object_name=info.name,
            object_uri=uri,
            object_generation=info.generation,
            batch_id=meta["batch_id"],
            source_uri=meta["source_uri"],
            source_generation=int(meta["source_generation"]),
            partition=meta.get("partition", ""),
            rows=int(meta["rows"]),
        )


@dataclass(frozen=True)
class LoadResult:
    status: str  #: 'loaded', 'already_loaded' or 'superseded'
    rows: int


@dataclass(frozen=True)
class BatchProgress:
    batch_id: str
    manifest_loaded: bool
    state: str | None  #: manifest state ('ingested'/'rejected') once loaded
    expected: dict[tuple[str, str], int]  #: (kind, partition) -> rows, from the manifest
    loaded: dict[tuple[str, str], int]  #: (kind, partition) -> rows, from the ledger
    superseded: bool

    @staticmethod
    def expected_from_layout(layout_json: str) -> dict[tuple[str, str], int]:
        """(kind, partition) -> rows, from the batch layout a raw.batches row stores as JSON."""
        layout = json.loads(layout_json)
        expected = {("sales", p["partition"]): p["rows"] for p in layout["partitions"]}
        if layout.get("quarantine"):
            expected[("quarantine", "")] = layout["quarantine"]["rows"]
        return expected

    @property
    def complete(self) -> bool:
        return (
            self.manifest_loaded
            and not self.superseded
            and all(self.loaded.get(key) == rows for key, rows in self.expected.items())
        )

    @property
    def partitions(self) -> list[str]:
        return sorted(p for k, p in self.expected if k == "sales")


@dataclass(frozen=True)
class TransformResult:
    status: str  #: 'success', 'failed' or 'started' (a job that records its own outcome)
    tests_passed: int
    tests_failed: int
    models_built: int
    seconds: float
    error: str | None = None
    execution: str | None = None  #: the Cloud Run execution that runs it, when started remotely


@dataclass(frozen=True)
class BatchRecord:
    """One batch as the warehouse knows it: its manifest row, its loads and its last transform run."""

    batch_id: str
    source_uri: str
    source_generation: int
    manifest_state: str | None  #: 'ingested' / 'rejected'; None while only partitions are loaded
    error: str | None
    error_code: str | None
    rows: dict[str, int | None]  #: read, loaded, quarantined, duplicates (None: not known without the manifest)
    layout: str | None  #: the manifest's partition layout (JSON)
    ingested_at: str | None
    newest_generation: int  #: the newest generation of the same source in the warehouse
    loaded: dict[tuple[str, str], int]  #: (kind, partition) -> rows in the ledger (without the manifest)
    run: dict | None  #: the batch's latest transform run


@dataclass(frozen=True)
class RetractResult:
    """What one retraction removed from the raw tables (the lake files stay)."""

    target: str  #: the source URI or batch id asked for
    batch_ids: list[str]  #: every batch (all generations) of the source whose rows were removed
    source_uris: list[str]
    rows_removed: int  #: sales lines removed
    quarantine_removed: int  #: quarantined rows removed
    partitions: list[str]  #: invoice months (YYYY-MM) the removed lines were in: the months to rebuild


@dataclass(frozen=True)
class Figures:
    fact_rows: int
    net_amount: object  #: Decimal


class Warehouse(Protocol):
    """Raw tables, the load ledger and the transform runs: DuckDB or BigQuery."""

    def provision(self) -> None:
        """Create datasets and tables where the platform does not (Terraform does in GCP)."""

    def load_object(self, request: LoadRequest) -> LoadResult:
        """Apply one lake object to its raw table with exactly-once effect."""

    def batch_progress(self, batch_id: str) -> BatchProgress: ...

    def claim_transform(self, batch_id: str, claim_key: str) -> bool:
        """True for exactly one caller per (batch_id, claim_key)."""

    def finish_transform(self, batch_id: str, claim_key: str, result: TransformResult) -> None: ...

    def release_transform(self, batch_id: str, claim_key: str) -> None:
        """Give a claim back after a transient failure, so the retry can take it."""

    def claimable_batches(self, exclude: str = "") -> list[BatchProgress]:
        """Ingested batches whose objects are all loaded, not superseded, with no transform run (one query)."""

    def batch_records(self) -> list[BatchRecord]:
        """Every batch with its loads and latest run, ordered by ingest time (one source of truth for status)."""

    def runs(self) -> list[dict]:
        """Transform runs, oldest first."""

    def figures(self) -> Figures:
        """The fact's row count and net amount (zero before the first dbt run)."""

    def read_relation(
        self, name: str, *, columns: list[str] | None = None, where: list[tuple[str, str, object]] | None = None
    ) -> pandas.DataFrame:
        """One model of the analytics layer (a mart or the fact) as a DataFrame: filters
        ``(column, operator, value)`` ANDed and pushed down as query parameters; money as Decimal,
        dates as datetime.date, integers as Int64 (see analytics_frames); RelationNotFound if absent."""

    def read_relation_arrow(
        self, name: str, *, columns: list[str] | None = None, where: list[tuple[str, str, object]] | None = None
    ) -> pyarrow.Table:
        """The same read as an Arrow table, as the warehouse returns it (money stays decimal128, no
        Python objects per row); the rows in no particular order; RelationNotFound if absent."""

    def retract(self, target: str, *, who: str, why: str) -> RetractResult:
        """Remove every batch of a source (``target``: its URI, or one of its batch ids) from the raw
        tables in one transaction, keep its ledger rows (so a redelivered event stays a no-op) and
        write one audit row per batch into ``pipeline.retractions``."""

    def retracted_batches(self) -> set[str]:
        """Batch ids named by an audit row of ``pipeline.retractions``."""

    def session(self) -> AbstractContextManager[None]:
        """While the block runs, this process's calls share one open warehouse (DuckDB: the file is
        opened once, not once per call; other processes wait for it until the block ends). Nothing on
        BigQuery."""

    def release(self) -> None:
        """Let go of what a session holds now (another process is about to use the warehouse); the
        session's next call opens it again."""


class Transformer(Protocol):
    """What runs the dbt project for a set of batches: in-process dbt or a Cloud Run job."""

    def run(self, batch_ids: list[str], partitions: list[str], claim_key: str = "initial") -> TransformResult: ...

    def ensure_idle(self) -> None:
        """Return once a build may start: a Cloud Run execution still running is waited for, up to
        ``Settings.transform_busy_wait_seconds``, then the transient "busy" error :meth:`run` would
        raise; asked before anything is claimed. Nothing for in-process dbt (one build at a time)."""
