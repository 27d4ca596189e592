"""The contract of ``Warehouse.read_relation``, shared by the DuckDB and BigQuery adapters.

A read names one relation of the analytics layer (a mart or the fact), optionally some of its
columns and filters ``(column, operator, value)`` that are ANDed and pushed down to the warehouse
as query parameters (never inlined), so BigQuery prunes partitions on ``invoice_date``. Both
adapters fetch Arrow (``read_relation_arrow`` returns it as it comes: DuckDB DECIMAL(p, s) and
BigQuery NUMERIC as decimal128, rows unsorted) and ``read_relation`` turns it into pandas with the
same dtypes:

- exact decimals (DuckDB DECIMAL, BigQuery NUMERIC/BIGNUMERIC) → ``object`` columns of
  :class:`decimal.Decimal` (never floats);
- integers → pandas nullable ``Int64``; dates → ``object`` columns of :class:`datetime.date`;
- timestamps with a zone → ``datetime64[us, UTC]``; without a zone they stay naive;
- text → pandas' string dtype; booleans → nullable ``boolean``; floats stay ``float64``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas
    import pyarrow

#: Comparison operators a filter may use.
OPERATORS = ("=", "<>", "<", "<=", ">", ">=")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")

Filter = tuple[str, str, object]


class RelationNotFound(LookupError):
    """The analytics layer has no relation of that name (dbt has not built it, or it never existed)."""


def check_read(name: str, columns: Sequence[str] | None, where: Sequence[Filter] | None) -> None:
    """Raise ValueError unless the relation, the columns and the filters are safe to put in SQL."""
    for identifier in [name, *(columns or []), *(column for column, _, _ in (where or []))]:
        if not isinstance(identifier, str) or not _IDENTIFIER.match(identifier):
            raise ValueError(f"not a column or relation name: {identifier!r}")
    if columns is not None and not columns:
        raise ValueError("columns: name at least one column, or pass None for all of them")
    for column, operator, value in where or []:
        if operator not in OPERATORS:
            raise ValueError(f"filter on {column}: operator {operator!r} is not one of {', '.join(OPERATORS)}")
        if value is None or not isinstance(value, (str, int, float, Decimal, date)):
            raise ValueError(f"filter on {column}: {value!r} is not a text, number or date value")


def frame_from_arrow(table: pyarrow.Table) -> pandas.DataFrame:
    """The DataFrame of a read, with the dtypes listed in the module docstring."""
    import pandas as pd
    import pyarrow as pa

    def mapper(arrow_type: pa.DataType):
        if pa.types.is_integer(arrow_type):
            return pd.Int64Dtype()
        if pa.types.is_boolean(arrow_type):
            return pd.BooleanDtype()
        return None

    columns = []
    for field, column in zip(table.schema, table.columns):
        if pa.types.is_timestamp(field.type) and field.type.tz is not None:
            column = column.cast(pa.timestamp(field.type.unit, tz="UTC"))
        elif pa.types.is_date64(field.type):
            column = column.cast(pa.date32())
        columns.append(column)
    table = pa.Table.from_arrays(columns, names=table.column_names)
    return table.to_pandas(types_mapper=mapper, date_as_object=True)


def parameter_type(value: object) -> str:
    """The BigQuery type of a filter value (query parameters are typed)."""
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        return "INT64"
    if isinstance(value, float):
        return "FLOAT64"
    if isinstance(value, Decimal):
        return "NUMERIC"
    if isinstance(value, datetime):
        return "TIMESTAMP" if value.tzinfo is not None else "DATETIME"
    if isinstance(value, date):
        return "DATE"
    return "STRING"
