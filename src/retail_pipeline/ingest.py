"""Ingest: one landing object → month-partitioned Parquet in the lake, quarantine, manifest.

The orchestrator over the steps, each in its own module, data flowing one way:
reader.py (chunks of source columns) → cleaning.py (typed rows, quarantined rows) →
partition_buffer.py (rows by invoice month, spilled to disk beyond a bound) → dedup.py and
lake_parquet.py (each month deduplicated and encoded) → lake.py (object names, manifest last).

How it stays close to the cost of reading the file (figures in docs/benchmarks.md):
- pyarrow is imported only after the reader has parsed a workbook, so calamine's parse peak
  does not stack on pyarrow's import footprint.
- Chunk halves are cleaned, and month partitions deduplicated, encoded and written, by a small
  thread pool (Arrow, numpy and zstd release the GIL): the second core works too.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import Faults, Limits
from .faults import maybe_crash
from .lake import (
    PARQUET_CONTENT_TYPE,
    batch_id_for,
    object_metadata,
    quarantine_object_name,
    sales_object_name,
    write_manifest,
)
from .partition_buffer import PartitionBuffer, QuarantineSink
from .ports import ObjectStore
from .reader import Chunk, RejectedInput, read_source

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

THREADS = 2  #: worker threads: chunk halves cleaned, partitions deduplicated and written at once
PARALLEL_CLEAN_ROWS = 100_000  #: chunks at least this long are cleaned in THREADS slices at once


@dataclass
class IngestResult:
    """What happened to one landing object generation; written as the batch's manifest."""

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
    partitions: list[dict[str, Any]] = field(default_factory=list)
    quarantine: dict[str, Any] | None = None
    sheets: list[str] = field(default_factory=list)
    seconds: float = 0.0
    ingested_at: str = ""

    def manifest(self) -> dict[str, Any]:
        return asdict(self)


def record_rejection(
    lake: ObjectStore,
    source_uri: str,
    generation: int,
    error: RejectedInput,
    *,
    rows_read: int = 0,
    seconds: float = 0.0,
) -> IngestResult:
    """The batch of a landing object that cannot be ingested: a 'rejected' manifest with the reason."""
    result = IngestResult(
        batch_id_for(source_uri, generation),
        source_uri,
        generation,
        "rejected",
        error=str(error),
        error_code=error.code,
        rows_read=rows_read,
        seconds=seconds,
    )
    log.warning("rejected %s: %s", source_uri, error, extra={"batch_id": result.batch_id, "reason": error.code})
    write_manifest(lake, result)
    return result


def ingest_object(
    source: Path,
    source_name: str,
    source_uri: str,
    generation: int,
    lake: ObjectStore,
    limits: Limits,
    progress: Callable[[str], None] | None = None,
    faults: Faults | None = None,
) -> IngestResult:
    """Read, type, classify and deduplicate one landing object; write its batch to the lake.

    A file that cannot be ingested (RejectedInput) gets a manifest with state 'rejected' and its
    reason. Other errors propagate: they are transient, and the platform retries the event.
    """
    started = time.monotonic()
    batch_id = batch_id_for(source_uri, generation)
    result = IngestResult(batch_id, source_uri, generation, "ingested")
    say = progress or (lambda _msg: None)
    lineage = {"source_uri": source_uri, "source_generation": generation, "batch_id": batch_id}
    try:
        with (
            tempfile.TemporaryDirectory(prefix="ingest-") as tmp,
            ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="ingest") as pool,
        ):
            buffer = PartitionBuffer(Path(tmp))
            quarantine = QuarantineSink(Path(tmp) / "quarantine.parquet", lineage)
            try:
                _read_and_clean(source, source_name, limits, result, buffer, quarantine, say, pool)
                if result.rows_read == 0:
                    raise RejectedInput("no_data_rows", "the file has a header but no data rows")
                _write_partitions(buffer, lake, lineage, result, say, pool, faults or Faults())
                if quarantine.rows:
                    name = quarantine_object_name(batch_id)
                    lake.put(
                        name,
                        quarantine.finish(),
                        content_type=PARQUET_CONTENT_TYPE,
                        metadata=object_metadata(batch_id, source_uri, generation, "quarantine", "", quarantine.rows),
                    )
                    result.quarantine = {"object": name, "rows": quarantine.rows}
            finally:
                quarantine.close()
                buffer.close()
    except RejectedInput as exc:
        return record_rejection(
            lake, source_uri, generation, exc, rows_read=result.rows_read, seconds=round(time.monotonic() - started, 3)
        )
    result.seconds = round(time.monotonic() - started, 3)
    result.ingested_at = datetime.now(UTC).isoformat()
    write_manifest(lake, result)
    return result


def _read_and_clean(
    source: Path,
    source_name: str,
    limits: Limits,
    result: IngestResult,
    buffer: PartitionBuffer,
    quarantine: QuarantineSink,
    say: Callable[[str], None],
    pool: ThreadPoolExecutor,
) -> None:
    """Every chunk of the source cleaned: typed rows into the buffer, quarantined rows into the sink."""
    for chunk in read_source(source, source_name, limits):
        say(f"read {chunk.sheet}: {chunk.table.num_rows:,} rows")
        if chunk.sheet not in result.sheets:
            result.sheets.append(chunk.sheet)
        result.rows_read += chunk.table.num_rows
        if result.rows_read > limits.max_rows:
            raise RejectedInput("too_many_rows", f"more than {limits.max_rows:,} data rows")
        good, bad, blank = _clean(chunk, limits, say, pool)
        if blank:
            result.rows_read -= blank  # rows with no value at all are not data rows
            say(f"{result.sheets[-1]}: skipped {blank:,} blank rows")
        del chunk
        buffer.add(good)
        del good
        quarantine.add(bad)
        result.rows_quarantined += bad.num_rows
        del bad


def _clean(
    chunk: Chunk, limits: Limits, say: Callable[[str], None], pool: ThreadPoolExecutor
) -> tuple[pa.Table, pa.Table, int]:
    """(typed rows, quarantined rows, blank rows skipped) of a chunk, cleaned over the pool's
    threads; the chunk is read again with per-cell detail when the fast read was not exact
    (see chunk.Chunk.reread)."""
    n = chunk.table.num_rows
    good, bad = _clean_parallel(chunk, limits, pool)
    blank = n - good.num_rows - bad.num_rows
    if (bad.num_rows or blank) and chunk.reread is not None:
        # the fast read turns an untypable cell into a blank one: read exactly before quarantining or skipping
        say(
            f"{chunk.sheet}: {bad.num_rows:,} rows to quarantine, {blank:,} blank; reading the sheet again "
            "for the raw text of every cell"
        )
        reread = chunk.reread
        del good, bad
        chunk.table = None  # the reader's generator may still hold the chunk: drop the first read now
        exact = reread()
        n = exact.table.num_rows
        good, bad = _clean_parallel(exact, limits, pool)
        blank = n - good.num_rows - bad.num_rows
    return good, bad, blank


def _clean_parallel(chunk: Chunk, limits: Limits, pool: ThreadPoolExecutor) -> tuple[pa.Table, pa.Table]:
    import pyarrow as pa

    from .cleaning import clean_rows

    n = chunk.table.num_rows
    if n < PARALLEL_CLEAN_ROWS:
        return clean_rows(chunk, limits)
    bounds = [n * i // THREADS for i in range(THREADS + 1)]
    results = list(
        pool.map(lambda ab: clean_rows(chunk.slice(ab[0], ab[1] - ab[0]), limits), zip(bounds[:-1], bounds[1:]))
    )
    return pa.concat_tables([g for g, _ in results]), pa.concat_tables([b for _, b in results])


def _write_partitions(
    buffer: PartitionBuffer,
    lake: ObjectStore,
    lineage: dict[str, Any],
    result: IngestResult,
    say: Callable[[str], None],
    pool: ThreadPoolExecutor,
    faults: Faults,
) -> None:
    """Deduplicate and write every month partition; results recorded in month order."""
    from .lake_parquet import partition_parquet

    def write(month: str) -> tuple[str, str, int, int]:
        table = buffer.take(month)
        rows_in = table.num_rows
        name = sales_object_name(month, result.batch_id)
        maybe_crash(faults, "ingest.partition", name)
        data, rows_out = partition_parquet(table, lineage)
        del table
        lake.put(
            name,
            data,
            content_type=PARQUET_CONTENT_TYPE,
            metadata=object_metadata(
                result.batch_id, result.source_uri, result.source_generation, "sales", month, rows_out
            ),
        )
        return month, name, rows_in, rows_out

    months = buffer.months()
    # spilled months are read back whole: one at a time (lazily, in order) keeps the peak at one month
    outcomes = map(write, months) if buffer.spilled else pool.map(write, months)
    for month, name, rows_in, rows_out in outcomes:
        result.rows_duplicate += rows_in - rows_out
        result.partitions.append({"partition": month, "object": name, "rows": rows_out})
        result.rows_loaded += rows_out
        say(f"wrote {name} ({rows_out:,} rows)")
