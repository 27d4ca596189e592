"""Ingest: one landing object → month-partitioned Parquet in the lake, quarantine, manifest.

The lake objects of a batch are written first and the manifest last, so a reader that goes by
manifests never sees half a batch. Every object name carries the batch id, which is derived from
the landing object and its generation: a retry of the same event rewrites the same objects.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import faults
from .cleaning import clean_chunk
from .config import Limits
from .ports import ObjectStore
from .reader import RejectedInput, read_source
from .schema import arrow_schema

log = logging.getLogger(__name__)

SALES_PREFIX = "sales/"
QUARANTINE_PREFIX = "quarantine/"
MANIFEST_PREFIX = "manifests/"
REJECTED_PREFIX = "rejected/"
DEDUP_KEYS = ["invoice_no", "stock_code", "description", "quantity", "invoice_datetime", "unit_price",
              "customer_id", "country"]
SPILL_ROWS = 2_000_000  #: buffered typed rows beyond which partitions spill to temporary Parquet


def batch_id_for(source_uri: str, generation: int) -> str:
    """Deterministic batch id: the same landing object generation always gets the same id."""
    return hashlib.sha256(f"{source_uri}#{generation}".encode()).hexdigest()[:16]


@dataclass
class IngestResult:
    batch_id: str
    source_uri: str
    source_generation: int
    state: str  #: 'ingested' or 'rejected'
    error: str | None = None
    error_code: str | None = None
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    rows_duplicate: int = 0
    partitions: list[dict] = field(default_factory=list)
    quarantine: dict | None = None
    sheets: list[str] = field(default_factory=list)
    seconds: float = 0.0
    ingested_at: str = ""

    def manifest(self) -> dict:
        return asdict(self)


class _PartitionBuffer:
    """Typed rows grouped by invoice month, in memory up to SPILL_ROWS, then in temporary files."""

    def __init__(self, tmpdir: Path) -> None:
        self.tmpdir = tmpdir
        self.tables: dict[str, list[pa.Table]] = defaultdict(list)
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.buffered = 0

    def add(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        months = pc.strftime(pc.cast(table["invoice_month"], pa.timestamp("s")), format="%Y-%m")
        for month in pc.unique(months).to_pylist():
            part = table.filter(pc.equal(months, month))
            self.tables[month].append(part)
            self.buffered += part.num_rows
        if self.buffered > SPILL_ROWS or self.writers:
            self._spill()

    def _spill(self) -> None:
        for month, parts in self.tables.items():
            if month not in self.writers:
                self.writers[month] = pq.ParquetWriter(self.tmpdir / f"{month}.parquet", arrow_schema("sales_lines"))
            for part in parts:
                self.writers[month].write_table(part)
        self.tables.clear()
        self.buffered = 0

    def months(self) -> list[str]:
        return sorted(set(self.tables) | set(self.writers))

    def take(self, month: str) -> pa.Table:
        parts = self.tables.pop(month, [])
        if month in self.writers:
            self.writers.pop(month).close()
            parts = [pq.read_table(self.tmpdir / f"{month}.parquet"), *parts]
        return pa.concat_tables(parts) if len(parts) > 1 else parts[0]


def deduplicate(table: pa.Table) -> pa.Table:
    """Keep the first of each set of exactly equal lines (after typing), in source order."""
    indexed = table.select(DEDUP_KEYS).append_column("__i", pa.array(np.arange(table.num_rows)))
    first = indexed.group_by(DEDUP_KEYS, use_threads=False).aggregate([("__i", "min")])["__i_min"]
    if len(first) == table.num_rows:
        return table
    return table.take(np.sort(first.to_numpy()))


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def ingest_object(source: Path, source_name: str, source_uri: str, generation: int, lake: ObjectStore,
                  limits: Limits, progress: Callable[[str], None] | None = None) -> IngestResult:
    """Read, type, classify and deduplicate one landing object; write its batch to the lake.

    A file that cannot be ingested (RejectedInput) gets a manifest with state 'rejected' and its
    reason. Other errors propagate: they are transient, and the platform retries the event.
    """
    started = time.monotonic()
    batch_id = batch_id_for(source_uri, generation)
    result = IngestResult(batch_id, source_uri, generation, "ingested")
    say = progress or (lambda _msg: None)
    lineage = {"source_uri": source_uri, "source_generation": generation, "batch_id": batch_id}
    base_meta = {"batch_id": batch_id, "source_uri": source_uri, "source_generation": str(generation)}
    try:
        with tempfile.TemporaryDirectory(prefix="ingest-") as tmp:
            buffer = _PartitionBuffer(Path(tmp))
            quarantined: list[pa.Table] = []
            for chunk in read_source(source, source_name, limits):
                say(f"read {chunk.sheet}: {chunk.table.num_rows:,} rows")
                if chunk.sheet not in result.sheets:
                    result.sheets.append(chunk.sheet)
                result.rows_read += chunk.table.num_rows
                if result.rows_read > limits.max_rows:
                    raise RejectedInput("too_many_rows", f"more than {limits.max_rows:,} data rows")
                good, bad = clean_chunk(chunk, lineage, limits)
                buffer.add(good)
                if bad.num_rows:
                    quarantined.append(bad)
                result.rows_quarantined += bad.num_rows
            if result.rows_read == 0:
                raise RejectedInput("no_data_rows", "the file has a header but no data rows")
            for month in buffer.months():
                table = buffer.take(month)
                distinct = deduplicate(table)
                result.rows_duplicate += table.num_rows - distinct.num_rows
                del table
                name = f"{SALES_PREFIX}month={month}/{batch_id}.parquet"
                faults.maybe_crash("ingest.partition", name)
                lake.put(name, _parquet_bytes(distinct), content_type="application/vnd.apache.parquet",
                         metadata={**base_meta, "kind": "sales", "partition": month, "rows": str(distinct.num_rows)})
                result.partitions.append({"partition": month, "object": name, "rows": distinct.num_rows})
                result.rows_loaded += distinct.num_rows
                say(f"wrote {name} ({distinct.num_rows:,} rows)")
            if quarantined:
                table = pa.concat_tables(quarantined)
                name = f"{QUARANTINE_PREFIX}{batch_id}.parquet"
                lake.put(name, _parquet_bytes(table), content_type="application/vnd.apache.parquet",
                         metadata={**base_meta, "kind": "quarantine", "partition": "", "rows": str(table.num_rows)})
                result.quarantine = {"object": name, "rows": table.num_rows}
    except RejectedInput as exc:
        result = IngestResult(batch_id, source_uri, generation, "rejected", error=str(exc), error_code=exc.code,
                              rows_read=result.rows_read)
        log.warning("rejected %s: %s", source_uri, exc, extra={"batch_id": batch_id, "reason": exc.code})
    result.seconds = round(time.monotonic() - started, 3)
    result.ingested_at = datetime.now(timezone.utc).isoformat()
    write_manifest(lake, result)
    return result


def write_manifest(lake: ObjectStore, result: IngestResult) -> str:
    name = f"{MANIFEST_PREFIX}{result.batch_id}.json"
    lake.put(name, json.dumps(result.manifest(), indent=2).encode(), content_type="application/json",
             metadata={"batch_id": result.batch_id, "source_uri": result.source_uri,
                       "source_generation": str(result.source_generation), "kind": "manifest", "partition": "",
                       "rows": "1"})
    return name


def read_manifest(lake: ObjectStore, batch_id: str) -> dict | None:
    info = lake.stat(f"{MANIFEST_PREFIX}{batch_id}.json")
    return json.loads(lake.read_bytes(info.name)) if info else None


def list_manifests(lake: ObjectStore) -> list[dict]:
    return [json.loads(lake.read_bytes(info.name)) for info in lake.list(MANIFEST_PREFIX) if info.name.endswith(".json")]
