"""How a DataFrame column looks in the workbook: its Excel number format, width and cell values.

Formats follow the column: exact decimals are pounds (every decimal of the marts and the fact is
GBP), columns named like a rate or a share are percentages, integers get thousands separators,
months show as 'Nov 2011'. Values go in as what Excel can hold: Decimal as the exact decimal text,
dates and naive date-times as Excel dates, zoned time stamps in UTC (Excel has no zones), NA as
an empty cell.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas

MONEY = '"£"#,##0.00;[Red]-"£"#,##0.00'
PERCENT = "0.0%"
SHARE = "0.00%"
INTEGER = "#,##0"
NUMBER = "#,##0.00"
DATE = "yyyy-mm-dd"
MONTH = "mmm yyyy"
DATETIME = "yyyy-mm-dd hh:mm"
TEXT = "@"
GENERAL = "General"


def number_format(name: str, dtype_kind: str) -> str:
    """The format of a column from its name and kind ('money', 'int', 'float', 'date', 'datetime',
    'bool', 'text'): rates and shares are percentages whatever their type."""
    if name.endswith("_rate"):
        return PERCENT
    if "share" in name:
        return SHARE
    if dtype_kind == "date":
        return MONTH if name.endswith("_month") else DATE
    return {"money": MONEY, "int": INTEGER, "float": NUMBER, "datetime": DATETIME}.get(dtype_kind, GENERAL)


def column_kind(series: pandas.Series) -> str:
    """What a DataFrame column of the analytics API holds (its dtypes: see analytics_frames)."""
    import pandas as pd

    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if dtype == object:  # noqa: E721 - pandas' object dtype compares equal to the type object
        sample = series.dropna()
        first = sample.iloc[0] if len(sample) else None
        if isinstance(first, Decimal):
            return "money"
        if isinstance(first, datetime):
            return "datetime"
        if isinstance(first, date):
            return "date"
    return "text"


def cell_values(series: pandas.Series, kind: str) -> list[Any]:
    """The column's values as the workbook stores them (None for NA)."""
    import pandas as pd

    if kind == "datetime":
        values = (
            series.dt.tz_convert(UTC).dt.tz_localize(None) if isinstance(series.dtype, pd.DatetimeTZDtype) else series
        )
        return [None if pd.isna(v) else v.to_pydatetime() for v in values]
    if kind == "int":
        return [None if pd.isna(v) else int(v) for v in series]
    if kind == "bool":
        return [None if pd.isna(v) else bool(v) for v in series]
    if kind == "float":
        return [None if pd.isna(v) else float(v) for v in series]
    convert: Callable[[Any], Any] = (lambda v: v) if kind in ("money", "date") else str
    return [None if v is None or (not isinstance(v, (Decimal, date)) and pd.isna(v)) else convert(v) for v in series]


def width(header: str, kind: str, values: list[Any], sample: int = 2000) -> float:
    """A column width (characters) that fits the header and the longest of the first values."""
    fixed = {"money": 15, "int": 10, "float": 10, "date": 11, "datetime": 17, "bool": 7}
    longest = fixed.get(kind) or max((len(str(v)) for v in values[:sample] if v is not None), default=8)
    return float(min(60, max(len(header) + 3, longest + 2, 8)))
