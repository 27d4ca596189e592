"""Typed rows as lake Parquet: the batch-constant lineage columns, the codec, one month's object.

The cleaning rules leave out the columns that are the same on every row of a batch
(cleaning.BATCH_CONSTANTS: source_uri, source_generation, batch_id); they are added here, as a
partition is written (``pa.repeat``), so buffered rows never carry the same long strings on
every row.

pyarrow and numpy are imported inside the functions: the ingest imports this module before it
parses a workbook, and calamine's parse peak must not stack on pyarrow's import footprint.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

PARQUET_COMPRESSION = "zstd"
WRITE_SLICE_ROWS = 262_144  #: rows of a partition encoded at once (bounds memory for big months)


def add_lineage(table: pa.Table, lineage: dict[str, Any], schema_name: str) -> pa.Table:
    """`table` (from cleaning.clean_rows) with the batch-constant columns, cast to the named schema."""
    import pyarrow as pa

    from .arrow_util import constant
    from .cleaning import BATCH_CONSTANTS
    from .schema import arrow_schema

    schema = arrow_schema(schema_name)
    n = table.num_rows
    columns = []
    for name in schema.names:
        if name in BATCH_CONSTANTS:
            columns.append(constant(lineage[name], n, schema.field(name).type))
        else:
            columns.append(table[name])
    return pa.Table.from_arrays(columns, names=schema.names).cast(schema)


#: columns stored plain, without a dictionary: values that change from row to row or come in runs
#: (a row number, invoice numbers, times, customers, days) are smaller plain and zstd-compressed than
#: as dictionary codes, and cheaper to write
PLAIN_COLUMNS = {"source_row", "invoice_no", "invoice_datetime", "invoice_date", "invoice_month", "customer_id"}


def dictionary_columns(schema: pa.Schema) -> list[str]:
    """Columns written with a dictionary: all but PLAIN_COLUMNS."""
    return [name for name in schema.names if name not in PLAIN_COLUMNS]


def statistics_columns(schema: pa.Schema) -> list[str]:
    """Columns with min/max statistics: numbers and times, which a reader can prune on. Text
    statistics would cost a fifth of the encoding and serve no reader of the lake."""
    import pyarrow as pa

    return [f.name for f in schema if not (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))]


def partition_parquet(table: pa.Table, lineage: dict[str, Any]) -> tuple[bytes, int]:
    """One month's typed rows, deduplicated, with lineage, as Parquet bytes; and the rows written.

    Encoded WRITE_SLICE_ROWS rows at a time, so a big month never holds its lineage columns
    or a filtered copy whole (a month of a 1x workbook is one slice, one row group).
    """
    import pyarrow.parquet as pq

    from .arrow_util import from_numpy
    from .dedup import keep_mask
    from .schema import arrow_schema

    mask = keep_mask(table)
    schema = arrow_schema("sales_lines")
    sink = io.BytesIO()
    written = 0
    with pq.ParquetWriter(
        sink,
        schema,
        compression=PARQUET_COMPRESSION,
        use_dictionary=dictionary_columns(schema),
        write_statistics=statistics_columns(schema),
    ) as writer:
        for start in range(0, table.num_rows, WRITE_SLICE_ROWS):
            part = table.slice(start, WRITE_SLICE_ROWS)
            if mask is not None:
                part = part.filter(from_numpy(mask[start : start + part.num_rows]))
            writer.write_table(add_lineage(part, lineage, "sales_lines"))
            written += part.num_rows
    return sink.getvalue(), written
