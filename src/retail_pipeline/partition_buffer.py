"""Typed rows held until they are written: by invoice month, in memory or spilled to disk.

Rows that come in runs of one month (a sales export is in date order, give or take a few late
lines) are split into zero-copy slices; rows in no useful order are sorted by month first.
Buffered rows beyond SPILL_ROWS go to one temporary Parquet file per month, so CSV and Parquet
inputs of any size run in bounded memory. Quarantined rows go straight to a temporary Parquet
file, with their lineage, as they come.

pyarrow and numpy are imported inside the methods (see lake_parquet.py for why).
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .lake_parquet import PARQUET_COMPRESSION, add_lineage

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

#: buffered typed rows beyond which partitions spill to temporary Parquet (a full-size workbook,
#: ~540,000 rows, stays in memory; bigger CSV/Parquet inputs and Excel's 1,048,575-row sheets spill)
SPILL_ROWS = 600_000
#: more runs of equal months than this in one chunk, and the chunk is sorted by month instead
MAX_MONTH_RUNS = 256


def _month_label(days: int) -> str:
    return (date(1970, 1, 1) + timedelta(days=int(days))).strftime("%Y-%m")


def split_by_month(table: pa.Table) -> dict[str, pa.Table]:
    """Rows grouped by invoice_month ('YYYY-MM' → rows in source order)."""
    import numpy as np
    import pyarrow as pa

    from .arrow_util import from_numpy, to_numpy

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


class PartitionBuffer:
    """Typed rows grouped by invoice month, in memory up to SPILL_ROWS, then in temporary files."""

    def __init__(self, tmpdir: Path) -> None:
        self.tmpdir = tmpdir
        self.tables: dict[str, list[pa.Table]] = {}
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.buffered = 0

    @property
    def spilled(self) -> bool:
        """True once any month went to disk (its rows are then read back whole by take)."""
        return bool(self.writers)

    def add(self, table: pa.Table) -> None:
        for month, part in split_by_month(table).items():
            self.tables.setdefault(month, []).append(part)
            self.buffered += part.num_rows
        if self.buffered > SPILL_ROWS or self.writers:
            self.spill()

    def spill(self) -> None:
        """Append every buffered month to its temporary file."""
        import pyarrow.parquet as pq

        for month, parts in self.tables.items():
            if month not in self.writers:
                # no dictionaries: an open writer per month would each hold one per column
                self.writers[month] = pq.ParquetWriter(
                    self.tmpdir / f"{month}.parquet", parts[0].schema, compression="lz4", use_dictionary=False
                )
            for part in parts:
                self.writers[month].write_table(part)
        self.tables.clear()
        self.buffered = 0

    def months(self) -> list[str]:
        return sorted(set(self.tables) | set(self.writers))

    def take(self, month: str) -> pa.Table:
        """All rows of one month, in the order they were added; the month leaves the buffer."""
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

    def close(self) -> None:
        """Close any spill file still open (after an error)."""
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()


class QuarantineSink:
    """Quarantined rows, with lineage, appended to a temporary Parquet file (bounded memory)."""

    def __init__(self, path: Path, lineage: dict[str, Any]) -> None:
        self.path = path
        self.lineage = lineage
        self.writer: pq.ParquetWriter | None = None
        self.rows = 0

    def add(self, bad: pa.Table) -> None:
        if bad.num_rows == 0:
            return
        import pyarrow.parquet as pq

        table = add_lineage(bad, self.lineage, "quarantine")
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, table.schema, compression=PARQUET_COMPRESSION)
        self.writer.write_table(table)
        self.rows += table.num_rows

    def finish(self) -> Path:
        """The finished file (closed)."""
        self.close()
        return self.path

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
