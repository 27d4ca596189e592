"""Ingest: one landing object → month-partitioned Parquet in the lake, quarantine, manifest.

The lake objects of a batch are written first and the manifest last, so a reader that goes by
manifests never sees half a batch. Every object name carries the batch id, which is derived from
the landing object and its generation: a retry of the same event rewrites the same objects.

How it stays close to the cost of reading the file (figures in docs/benchmarks.md):
- pyarrow is imported inside the functions, after the reader has parsed a workbook (see
  reader.py), so this module is cheap to import and calamine's parse peak does not stack on
  pyarrow's import footprint.
- Typed rows are split by month without copies when they come in date order (the usual case),
  kept in memory up to SPILL_ROWS and spilled to temporary Parquet beyond (CSV/Parquet inputs of
  any size run in bounded memory).
- Exact duplicates: a hash of the numeric key columns picks the few candidate rows, which are
  then compared exactly on dictionary codes of all key columns (see first_of_each); no Arrow
  group_by, whose Acero import alone costs more than half a second.
- Chunk halves are cleaned, and month partitions deduplicated, encoded and written, by a small
  thread pool (Arrow, numpy and zstd release the GIL): the second core works too.
- The batch-constant lineage columns are added per partition, as it is written.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from .faults import maybe_crash
from .config import Faults, Limits
from .ports import ObjectStore
from .reader import RejectedInput, read_source

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

log = logging.getLogger(__name__)

SALES_PREFIX = "sales/"
QUARANTINE_PREFIX = "quarantine/"
MANIFEST_PREFIX = "manifests/"
REJECTED_PREFIX = "rejected/"
DEDUP_KEYS = ["invoice_no", "stock_code", "description", "quantity", "invoice_datetime", "unit_price",
              "customer_id", "country"]
#: buffered typed rows beyond which partitions spill to temporary Parquet (a full-size workbook,
#: ~540,000 rows, stays in memory; bigger CSV/Parquet inputs and Excel's 1,048,575-row sheets spill)
SPILL_ROWS = 600_000
#: more runs of equal months than this in one chunk, and the chunk is sorted by month instead
MAX_MONTH_RUNS = 256
THREADS = 2  #: worker threads: chunk halves cleaned, partitions deduplicated and written at once
WRITE_SLICE_ROWS = 262_144  #: rows of a partition encoded at once (bounds memory for big months)
PARALLEL_CLEAN_ROWS = 100_000  #: chunks at least this long are cleaned in THREADS slices at once
PARQUET_COMPRESSION = "zstd"


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


def _month_label(days: int) -> str:
    return (date(1970, 1, 1) + timedelta(days=int(days))).strftime("%Y-%m")


def split_by_month(table: "pa.Table") -> dict[str, "pa.Table"]:
    """Rows grouped by invoice_month ('YYYY-MM' → rows in source order).

    Rows that come in runs of one month (a sales export is in date order, give or take a few
    late lines) become zero-copy slices; rows in no useful order are stably sorted by month.
    """
    import numpy as np
    import pyarrow as pa

    from .cleaning import from_numpy, to_numpy

    if table.num_rows == 0:
        return {}
    days = to_numpy(table["invoice_month"].cast(pa.int32()), np.int32)
    starts = np.concatenate(([0], np.flatnonzero(days[1:] != days[:-1]) + 1))
    if len(starts) > MAX_MONTH_RUNS:
        order = np.argsort(days, kind="stable")
        table = table.take(from_numpy(order.astype(np.int64)))
        days = days[order]
        starts = np.concatenate(([0], np.flatnonzero(days[1:] != days[:-1]) + 1))
    ends = np.append(starts[1:], len(days))
    parts: dict[str, list[pa.Table]] = {}
    for a, b in zip(starts.tolist(), ends.tolist()):
        parts.setdefault(_month_label(days[a]), []).append(table.slice(a, b - a))
    return {month: pa.concat_tables(p) if len(p) > 1 else p[0] for month, p in parts.items()}


def _dense_codes(values) -> tuple["np.ndarray", int]:
    """Dense integer codes of an array's values (null = 0), numbered in order of first appearance,
    and how many distinct codes there are."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from .cleaning import _contiguous, lit, to_numpy

    encoded = pc.dictionary_encode(_contiguous(values))
    codes = to_numpy(pc.fill_null(pc.add(encoded.indices.cast(pa.int64()), lit(1)), lit(0)), np.int64)
    return codes.astype(np.uint64), len(encoded.dictionary) + 1


def _pack(columns: Iterable[tuple["np.ndarray", int]], n: int) -> list["np.ndarray"]:
    """(codes, cardinality) columns packed side by side into as few uint64 words as fit."""
    import numpy as np

    words: list[np.ndarray] = []
    word, used = None, 64
    for codes, cardinality in columns:
        bits = max(1, int(cardinality - 1).bit_length())
        if used + bits > 64:
            if word is not None:
                words.append(word)
            word, used = np.zeros(n, dtype=np.uint64), 0
        word |= codes << np.uint64(used)
        used += bits
    words.append(word)
    return words


def _fixed_width_hash(table: "pa.Table", keys: list[str]) -> "np.ndarray":
    """A 64-bit mix of the key columns that are fixed-width and null-free (numbers, times,
    decimals), read straight from their buffers; zeros when there are none. Equal rows always
    get equal values; unequal rows rarely do."""
    import numpy as np
    import pyarrow as pa

    from .cleaning import _contiguous

    n = table.num_rows
    mixed = np.zeros(n, dtype=np.uint64)
    for key in keys:
        col = _contiguous(table[key])
        width = getattr(col.type, "byte_width", 0) if pa.types.is_primitive(col.type) or pa.types.is_decimal(
            col.type) else 0
        if col.null_count or width not in (4, 8, 16) or pa.types.is_boolean(col.type):
            continue
        buf = col.buffers()[1]
        if width == 16:
            halves = np.frombuffer(buf, dtype=np.uint64, count=2 * n, offset=col.offset * 16).reshape(n, 2)
            parts = [halves[:, 0], halves[:, 1]]
        else:
            raw = np.frombuffer(buf, dtype=np.uint32 if width == 4 else np.uint64, count=n, offset=col.offset * width)
            parts = [raw.astype(np.uint64)]
        for part in parts:
            mixed ^= part + np.uint64(0x9E3779B97F4A7C15) + (mixed << np.uint64(6)) + (mixed >> np.uint64(2))
    return mixed


def first_of_each(table: "pa.Table", keys: list[str]) -> "np.ndarray | None":
    """Row indices (ascending) of the first row of each set of rows equal on `keys` (nulls are
    equal); None when no two rows are equal.

    Rows whose numeric keys hash uniquely cannot have an equal row: one sort of a 64-bit mix of
    those columns finds the few candidates. Only the candidates get exact keys: each key column
    becomes dense dictionary codes (Arrow hashing), packed side by side into 64-bit words, and a
    stable sort on the words puts equal rows together, the first one first. Exact: the hash only
    chooses candidates; equality is decided on codes.
    """
    import numpy as np

    from .cleaning import from_numpy

    n = table.num_rows
    if n < 2:
        return None
    mixed = _fixed_width_hash(table, keys)
    ordered = np.sort(mixed)
    repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    if len(repeated) == 0:
        return None
    at = np.minimum(np.searchsorted(repeated, mixed), len(repeated) - 1)
    candidates = np.flatnonzero(repeated[at] == mixed)
    keyed = table.select(keys)
    if len(candidates) < n:
        keyed = keyed.take(from_numpy(candidates.astype(np.int64)))
    words = _pack((_dense_codes(keyed[key]) for key in keys), len(candidates))
    order = np.lexsort(words[::-1])
    same = np.ones(len(candidates) - 1, dtype=bool)
    for w in words:
        ws = w[order]
        same &= ws[1:] == ws[:-1]
    if not same.any():
        return None
    keep = np.ones(n, dtype=bool)
    keep[candidates[order[1:][same]]] = False
    return np.flatnonzero(keep)


def deduplicate(table: "pa.Table") -> "pa.Table":
    """Keep the first of each set of exactly equal lines (after typing), in source order."""
    import numpy as np

    from .cleaning import from_numpy

    keep = first_of_each(table, DEDUP_KEYS)
    if keep is None:
        return table
    mask = np.zeros(table.num_rows, dtype=bool)
    mask[keep] = True
    return table.filter(from_numpy(mask))


def _parquet_bytes(table: "pa.Table") -> bytes:
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(table, sink, compression=PARQUET_COMPRESSION, use_dictionary=_dictionary_columns(table.schema))
    return sink.getvalue()


def _dictionary_columns(schema: "pa.Schema") -> list[str]:
    # source_row is unique per row: trying a dictionary for it is wasted work
    return [name for name in schema.names if name != "source_row"]


def partition_parquet(table: "pa.Table", lineage: dict) -> tuple[bytes, int]:
    """One month's typed rows, deduplicated, with lineage, as Parquet bytes; and the rows written.

    Encoded WRITE_SLICE_ROWS rows at a time, so a big month never holds its lineage columns
    or a filtered copy whole (a month of a 1x workbook is one slice, one row group).
    """
    import numpy as np
    import pyarrow.parquet as pq

    from .cleaning import add_lineage, from_numpy
    from .schema import arrow_schema

    keep = first_of_each(table, DEDUP_KEYS)
    mask = None
    if keep is not None:
        mask = np.zeros(table.num_rows, dtype=bool)
        mask[keep] = True
    schema = arrow_schema("sales_lines")
    sink = io.BytesIO()
    written = 0
    with pq.ParquetWriter(sink, schema, compression=PARQUET_COMPRESSION,
                          use_dictionary=_dictionary_columns(schema)) as writer:
        for start in range(0, table.num_rows, WRITE_SLICE_ROWS):
            part = table.slice(start, WRITE_SLICE_ROWS)
            if mask is not None:
                part = part.filter(from_numpy(mask[start:start + part.num_rows]))
            writer.write_table(add_lineage(part, lineage, "sales_lines"))
            written += part.num_rows
    return sink.getvalue(), written


class _PartitionBuffer:
    """Typed rows grouped by invoice month, in memory up to SPILL_ROWS, then in temporary files."""

    def __init__(self, tmpdir: Path) -> None:
        self.tmpdir = tmpdir
        self.tables: dict[str, list[pa.Table]] = {}
        self.writers: dict = {}
        self.buffered = 0

    @property
    def spilled(self) -> bool:
        return bool(self.writers)

    def add(self, table: "pa.Table") -> None:
        for month, part in split_by_month(table).items():
            self.tables.setdefault(month, []).append(part)
            self.buffered += part.num_rows
        if self.buffered > SPILL_ROWS or self.writers:
            self._spill()

    def _spill(self) -> None:
        import pyarrow.parquet as pq

        for month, parts in self.tables.items():
            if month not in self.writers:
                # no dictionaries: an open writer per month would each hold one per column
                self.writers[month] = pq.ParquetWriter(self.tmpdir / f"{month}.parquet", parts[0].schema,
                                                       compression="lz4", use_dictionary=False)
            for part in parts:
                self.writers[month].write_table(part)
        self.tables.clear()
        self.buffered = 0

    def months(self) -> list[str]:
        return sorted(set(self.tables) | set(self.writers))

    def close(self) -> None:
        """Close any spill file still open (after an error)."""
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()

    def take(self, month: str) -> "pa.Table":
        import pyarrow as pa
        import pyarrow.parquet as pq

        parts = self.tables.pop(month, [])
        if month in self.writers:
            self.writers.pop(month).close()
            path = self.tmpdir / f"{month}.parquet"
            with pq.ParquetFile(path) as spilled:
                parts = [spilled.read(), *parts]
            path.unlink()
        return pa.concat_tables(parts) if len(parts) > 1 else parts[0]


def ingest_object(source: Path, source_name: str, source_uri: str, generation: int, lake: ObjectStore,
                  limits: Limits, progress: Callable[[str], None] | None = None,
                  faults: Faults | None = None) -> IngestResult:
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
        with tempfile.TemporaryDirectory(prefix="ingest-") as tmp, \
                ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="ingest") as pool:
            buffer = _PartitionBuffer(Path(tmp))
            quarantine = _QuarantineSink(Path(tmp) / "quarantine.parquet", lineage)
            try:
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
                if result.rows_read == 0:
                    raise RejectedInput("no_data_rows", "the file has a header but no data rows")
                _write_partitions(buffer, lake, lineage, base_meta, result, say, pool, faults or Faults())
                if quarantine.rows:
                    name = f"{QUARANTINE_PREFIX}{batch_id}.parquet"
                    lake.put(name, quarantine.finish(), content_type="application/vnd.apache.parquet",
                             metadata={**base_meta, "kind": "quarantine", "partition": "",
                                       "rows": str(quarantine.rows)})
                    result.quarantine = {"object": name, "rows": quarantine.rows}
            finally:
                quarantine.close()
                buffer.close()
    except RejectedInput as exc:
        result = IngestResult(batch_id, source_uri, generation, "rejected", error=str(exc), error_code=exc.code,
                              rows_read=result.rows_read)
        log.warning("rejected %s: %s", source_uri, exc, extra={"batch_id": batch_id, "reason": exc.code})
    result.seconds = round(time.monotonic() - started, 3)
    result.ingested_at = datetime.now(timezone.utc).isoformat()
    write_manifest(lake, result)
    return result


def _clean(chunk, limits: Limits, say: Callable[[str], None], pool: ThreadPoolExecutor):
    """clean_rows over the pool's threads, reading the chunk again with per-cell detail when the
    fast read was not exact (see reader.Chunk.reread)."""
    n = chunk.table.num_rows
    good, bad = _clean_parallel(chunk, limits, pool)
    blank = n - good.num_rows - bad.num_rows
    if (bad.num_rows or blank) and chunk.reread is not None:
        # the fast read turns an untypable cell into a blank one: read exactly before quarantining or skipping
        say(f"{chunk.sheet}: {bad.num_rows:,} rows to quarantine, {blank:,} blank; reading the sheet again "
            "for the raw text of every cell")
        reread = chunk.reread
        del good, bad
        chunk.table = None  # the reader's generator may still hold the chunk: drop the first read now
        exact = reread()
        n = exact.table.num_rows
        good, bad = _clean_parallel(exact, limits, pool)
        blank = n - good.num_rows - bad.num_rows
    return good, bad, blank


def _clean_parallel(chunk, limits: Limits, pool: ThreadPoolExecutor):
    import pyarrow as pa

    from .cleaning import clean_rows

    n = chunk.table.num_rows
    if n < PARALLEL_CLEAN_ROWS:
        return clean_rows(chunk, limits)
    parts = THREADS
    bounds = [n * i // parts for i in range(parts + 1)]
    results = list(pool.map(lambda ab: clean_rows(chunk.slice(ab[0], ab[1] - ab[0]), limits),
                            zip(bounds[:-1], bounds[1:])))
    return pa.concat_tables([g for g, _ in results]), pa.concat_tables([b for _, b in results])


class _QuarantineSink:
    """Quarantined rows, with lineage, appended to a temporary Parquet file (bounded memory)."""

    def __init__(self, path: Path, lineage: dict) -> None:
        self.path = path
        self.lineage = lineage
        self.writer = None
        self.rows = 0

    def add(self, bad: "pa.Table") -> None:
        if bad.num_rows == 0:
            return
        import pyarrow.parquet as pq

        from .cleaning import add_lineage

        table = add_lineage(bad, self.lineage, "quarantine")
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, table.schema, compression=PARQUET_COMPRESSION)
        self.writer.write_table(table)
        self.rows += table.num_rows

    def finish(self) -> Path:
        self.close()
        return self.path

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _write_partitions(buffer: _PartitionBuffer, lake: ObjectStore, lineage: dict, base_meta: dict,
                      result: IngestResult, say: Callable[[str], None], pool: ThreadPoolExecutor,
                      faults: Faults) -> None:
    """Deduplicate and write every month partition; results recorded in month order."""
    batch_id = lineage["batch_id"]

    def write(month: str) -> tuple[str, int, int]:
        table = buffer.take(month)
        rows_in = table.num_rows
        name = f"{SALES_PREFIX}month={month}/{batch_id}.parquet"
        maybe_crash(faults, "ingest.partition", name)
        data, rows_out = partition_parquet(table, lineage)
        del table
        lake.put(name, data, content_type="application/vnd.apache.parquet",
                 metadata={**base_meta, "kind": "sales", "partition": month, "rows": str(rows_out)})
        return name, rows_in, rows_out

    months = buffer.months()
    if buffer.spilled:  # spilled months are read back whole: one at a time keeps the peak at one month
        outcomes = [(month, _Done(write(month))) for month in months]
    else:
        outcomes = [(month, pool.submit(write, month)) for month in months]
    for month, outcome in outcomes:
        name, rows_in, rows_out = outcome.result()
        result.rows_duplicate += rows_in - rows_out
        result.partitions.append({"partition": month, "object": name, "rows": rows_out})
        result.rows_loaded += rows_out
        say(f"wrote {name} ({rows_out:,} rows)")


class _Done:
    """An already computed result with the Future.result() interface."""

    def __init__(self, value) -> None:
        self.value = value

    def result(self):
        return self.value


def write_manifest(lake: ObjectStore, result: IngestResult) -> str:
    """Write the batch manifest (last object of a batch); stamps ingested_at if the caller did not."""
    if not result.ingested_at:
        result.ingested_at = datetime.now(timezone.utc).isoformat()
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
