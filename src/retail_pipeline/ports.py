"""The three ports the logic talks to. Each has an embedded and a cloud adapter (see adapters/)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterator, Protocol


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

    def uri(self, name: str) -> str:
        """Address of an object: gs://bucket/name or file:///path."""

    def put(self, name: str, data: bytes | Path, *, content_type: str = ..., metadata: dict[str, str] | None = None) -> ObjectInfo:
        """Write one object atomically (readers see the old or the new generation, never a part)."""

    def stat(self, name: str) -> ObjectInfo | None:
        """The live generation of an object, or None."""

    def read_bytes(self, name: str) -> bytes: ...

    def download(self, name: str, folder: Path) -> Path:
        """A local file holding the object: the object itself for folders, a copy in `folder` otherwise."""

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...

    def delete(self, name: str) -> None: ...


@dataclass(frozen=True)
class Message:
    """A published message as the subscriber receives it."""

    message_id: str
    data: bytes
    attributes: dict[str, str]
    publish_time: datetime
    delivery_attempt: int = 1


class MessageBus(Protocol):
    """A topic: the local spool or Pub/Sub."""

    topic: str  #: projects/P/topics/T

    def publish(self, data: bytes, attributes: dict[str, str]) -> str:
        """Publish once; returns the message id. Delivery is at least once."""


class Warehouse(Protocol):
    """Raw tables, the load ledger and the transform claims: DuckDB or BigQuery."""

    def ensure_tables(self) -> None: ...

    def load_object(self, request: "LoadRequest") -> "LoadResult":
        """Apply one lake object to its raw table with exactly-once effect (see load.py)."""

    def batch_progress(self, batch_id: str) -> "BatchProgress": ...

    def claim_transform(self, batch_id: str, claim_key: str) -> bool:
        """True for exactly one caller per (batch_id, claim_key)."""

    def finish_transform(self, batch_id: str, claim_key: str, result: "TransformResult") -> None: ...

    def release_transform(self, batch_id: str, claim_key: str) -> None:
        """Give a claim back after a transient failure, so the retry can take it."""

    def status(self) -> dict: ...

    def read_relation(self, name: str, *, columns: list[str] | None = None,
                      where: list[tuple[str, str, object]] | None = None) -> "pandas.DataFrame":
        """One model of the analytics layer (a mart or the fact) as a DataFrame: filters
        ``(column, operator, value)`` ANDed and pushed down as query parameters; money as Decimal,
        dates as datetime.date, integers as Int64 (see analytics_frames); RelationNotFound if absent."""


@dataclass(frozen=True)
class LoadRequest:
    """One lake object to load, with the keys that make the load idempotent."""

    kind: str  #: 'sales', 'quarantine' or 'manifest'
    object_uri: str
    local_path: Path | None
    object_generation: int
    batch_id: str
    source_uri: str
    source_generation: int
    partition: str  #: 'YYYY-MM' for sales, '' otherwise
    rows: int  #: rows the object holds, from the ingest manifest metadata


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
        import json

        layout = json.loads(layout_json)
        expected = {("sales", p["partition"]): p["rows"] for p in layout["partitions"]}
        if layout.get("quarantine"):
            expected[("quarantine", "")] = layout["quarantine"]["rows"]
        return expected

    @property
    def complete(self) -> bool:
        return self.manifest_loaded and not self.superseded and all(
            self.loaded.get(key) == rows for key, rows in self.expected.items()
        )


@dataclass(frozen=True)
class TransformResult:
    status: str  #: 'success' or 'failed'
    tests_passed: int
    tests_failed: int
    models_built: int
    seconds: float
    error: str | None = None
