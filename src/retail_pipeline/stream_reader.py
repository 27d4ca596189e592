"""CSV (plain or gzip) and Parquet landing files → chunks, streamed in bounded batches.

CSV cells all stay text: numbers and dates are typed by the cleaning rules, like text cells of
a workbook. Parquet keeps its own column types.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

from .chunk import Chunk, RejectedInput, map_columns, source_fields

#: CSV bytes Arrow parses at once: its streaming reader holds a few dozen times this in memory
CSV_BLOCK_BYTES = 1024 * 1024
CSV_CHUNK_ROWS = 100_000  #: CSV rows gathered into one chunk (one pass of the cleaning rules)
PARQUET_BATCH_ROWS = 128_000  #: Parquet rows per streamed batch


def _csv_header(path: Path, gzipped: bool) -> list[str]:
    """The header record of a CSV file, parsed by the csv module (handles quotes and a BOM)."""
    import csv
    import io

    try:
        raw = gzip.open(path, "rb") if gzipped else open(path, "rb")
        with raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as text:
            header = next(csv.reader(text), None)
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise RejectedInput("unreadable_csv", f"not a readable CSV file: {exc}") from exc
    if not header:
        raise RejectedInput("unreadable_csv", "the CSV file has no header row")
    return header


def read_csv(path: Path, *, gzipped: bool) -> Iterator[Chunk]:
    """Stream a CSV in chunks of about CSV_CHUNK_ROWS rows, every column as text.

    Every cell stays text: numbers and dates are typed by the cleaning rules, like text cells
    of a workbook. The header is parsed once by the csv module; Arrow then reads the data with
    positional column names, so any header text (duplicates, odd quoting) is safe. Arrow parses
    small blocks (CSV_BLOCK_BYTES: its memory grows with the block size), gathered into chunks.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    header = _csv_header(path, gzipped)
    mapping, missing = map_columns(header)
    if missing:
        raise RejectedInput("missing_columns", f"the CSV lacks the required columns {', '.join(missing)}")
    positional = [f"c{i}" for i in range(len(header))]
    by_position = {f"c{header.index(h)}": canonical for h, canonical in mapping.items()}
    fields = source_fields()
    stream = pa.input_stream(str(path), compression="gzip" if gzipped else None)
    try:
        try:
            reader = pacsv.open_csv(
                stream,
                read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES, skip_rows=1, column_names=positional),
                convert_options=pacsv.ConvertOptions(
                    column_types={n: pa.string() for n in by_position},
                    strings_can_be_null=True,
                    null_values=[""],
                    include_columns=list(by_position),
                ),
                parse_options=pacsv.ParseOptions(newlines_in_values=True),
            )
        except (pa.ArrowInvalid, OSError, EOFError) as exc:
            raise RejectedInput("unreadable_csv", f"not a readable CSV file: {exc}") from exc
        row = 2
        batches: list[pa.RecordBatch] = []
        pending = 0
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                batch = None
            except (pa.ArrowInvalid, OSError, EOFError) as exc:
                raise RejectedInput("unreadable_csv", f"CSV is damaged near row {row + pending:,}: {exc}") from exc
            if batch is not None and batch.num_rows:
                batches.append(batch)
                pending += batch.num_rows
            if batches and (batch is None or pending >= CSV_CHUNK_ROWS):
                table = pa.Table.from_batches(batches)
                batches = []
                table = table.rename_columns([by_position[n] for n in table.column_names]).select(fields)
                yield Chunk("csv", row, table)
                del table
                row += pending
                pending = 0
            if batch is None:
                break
    finally:
        stream.close()


def read_parquet(path: Path) -> Iterator[Chunk]:
    """Stream a Parquet file in batches of PARQUET_BATCH_ROWS rows, its own column types kept."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise RejectedInput("unreadable_parquet", f"not a readable Parquet file: {exc}") from exc
    mapping, missing = map_columns(pf.schema_arrow.names)
    if missing:
        raise RejectedInput("missing_columns", f"the Parquet file lacks the required columns {', '.join(missing)}")
    fields = source_fields()
    row = 2
    try:
        for batch in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=list(mapping)):
            rows = batch.num_rows
            table = pa.Table.from_batches([batch]).rename_columns([mapping[n] for n in batch.schema.names])
            del batch
            yield Chunk("parquet", row, table.select(fields))
            del table
            row += rows
    except (pa.ArrowInvalid, OSError) as exc:
        raise RejectedInput("unreadable_parquet", f"Parquet file is damaged near row {row:,}: {exc}") from exc
    finally:
        pf.close()
