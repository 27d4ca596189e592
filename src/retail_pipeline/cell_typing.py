"""Source cells → typed values: text trimmed, numbers and dates from cells or from text.

Each parser returns the typed values and, beside them, the raw text of the cells that are
present but cannot be typed (for the quarantine's ``raw_*`` columns and its reasons). A
workbook reader types most cells itself and reports the few it could not hold as cell errors,
which are the only cells looked at one by one here.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .arrow_util import lit, sparse_strings, sparse_values

NUMBER_RE = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"
DATE_FORMATS = [
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%d/%m/%Y",
]
EPOCH = datetime(1970, 1, 1)
NULL_TEXT = lit(None, pa.string())
ZERO32 = lit(0, pa.int32())


def zero(type: pa.DataType) -> pa.Scalar:
    """0 as a scalar of a numeric type (decimals included)."""
    return (lit(0.0) if pa.types.is_decimal(type) else lit(0)).cast(type)


def clean_text(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Text trimmed; blank text becomes null (a scan first: no rewrite when nothing is blank)."""
    if not pa.types.is_string(arr.type) and not pa.types.is_large_string(arr.type):
        arr = pc.cast(arr, pa.string())
    trimmed = pc.utf8_trim_whitespace(arr)
    lengths = pc.binary_length(trimmed)
    blank = pc.equal(lengths, zero(lengths.type))
    if not pc.any(blank).as_py():
        return trimmed
    return pc.if_else(blank, NULL_TEXT, trimmed)


def strip_point_zero(customer: pa.Array) -> pa.Array:
    """'17850.0' → '17850' (a numeric cell read as text); only scans again when some id has a '.'."""
    if not pc.any(pc.match_substring(customer, ".")).as_py():
        return customer
    return pc.replace_substring_regex(customer, r"\.0+$", "")


def parse_number(arr: pa.Array | pa.ChunkedArray, errors: dict[int, str]) -> tuple[pa.Array, pa.Array]:
    """(float64 values, raw text of cells that are present but not numbers) for a numeric field."""
    n = len(arr)
    if pa.types.is_floating(arr.type) or pa.types.is_integer(arr.type) or pa.types.is_decimal(arr.type):
        values = pc.cast(arr, pa.float64())
        if not errors:
            return values, pa.nulls(n, pa.string())
        bad: dict[int, str] = {}
        fixed: dict[int, float] = {}
        for row, raw in errors.items():
            text = raw.strip()
            try:  # a cell the reader could not type may still be number text ("1,5" is not)
                number = float(text) if text else None
            except ValueError:
                bad[row] = raw
                continue
            if number is not None:
                fixed[row] = number
        if fixed:
            values = pc.coalesce(sparse_values(n, fixed, np.float64, pa.float64()), values)
        return values, sparse_strings(n, bad)
    text = pc.utf8_trim_whitespace(pc.cast(arr, pa.string()))
    ok = pc.match_substring_regex(text, NUMBER_RE)
    blank = pc.or_kleene(pc.is_null(text), pc.equal(pc.binary_length(text), ZERO32))
    values = pc.cast(pc.if_else(ok, text, NULL_TEXT), pa.float64())
    bad_text = pc.if_else(pc.or_kleene(ok, blank), NULL_TEXT, pc.cast(arr, pa.string()))
    return values, bad_text


def parse_text_date(text: str) -> datetime | None:
    """One date in ISO or UK day-first form, or None."""
    text = text.strip()
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def parse_dates(arr: pa.Array | pa.ChunkedArray, errors: dict[int, str]) -> tuple[pa.Array, pa.Array]:
    """(timestamp[us] values, raw text of cells that are present but not dates)."""
    n = len(arr)
    if pa.types.is_timestamp(arr.type):
        values = (
            pc.cast(arr, pa.timestamp("us"))
            if arr.type.tz is None
            else pc.cast(pc.local_timestamp(arr), pa.timestamp("us"))
        )
        if not errors:
            return values, pa.nulls(n, pa.string())
        raw_bad: dict[int, str] = {}
        fixed: dict[int, int] = {}
        for row, raw in errors.items():
            parsed = parse_text_date(raw)
            if parsed is None:
                raw_bad[row] = raw
            else:
                fixed[row] = (parsed - EPOCH) // timedelta(microseconds=1)
        if fixed:
            values = pc.coalesce(sparse_values(n, fixed, np.int64, pa.timestamp("us")), values)
        return values, sparse_strings(n, raw_bad)
    if pa.types.is_date(arr.type):
        return pc.cast(pc.cast(arr, pa.date32()), pa.timestamp("us")), pa.nulls(n, pa.string())
    text = pc.utf8_trim_whitespace(pc.cast(arr, pa.string()))
    values = None
    for fmt in DATE_FORMATS:
        parsed = pc.strptime(text, format=fmt, unit="us", error_is_null=True)
        values = parsed if values is None else pc.coalesce(values, parsed)
    blank = pc.or_kleene(pc.is_null(text), pc.equal(pc.binary_length(text), ZERO32))
    bad = pc.if_else(pc.or_kleene(pc.is_valid(values), blank), NULL_TEXT, pc.cast(arr, pa.string()))
    return values, bad
