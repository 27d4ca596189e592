"""Arrow columns of the marts as the page's integer columns, without a Python object per value.

The big marts (``mart_product_sales_daily`` has millions of rows at ten times the reference data)
arrive as Arrow tables (:meth:`Analytics.read_mart_arrow`); every function here works on whole
columns in Arrow's or numpy's compiled loops: keys become positions in a lookup through a hash
lookup (``pyarrow.compute.index_in``), exact decimal amounts become integer units by reading
Arrow's decimal128 storage, which already holds the amount in units of its scale. No Arrow value is
built from Python objects (pyarrow then imports pandas, 0.4 s): see arrow_util.
"""

from __future__ import annotations

import sys
from typing import TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..arrow_util import bools, contiguous, from_numpy, to_numpy

Column: TypeAlias = "pa.Array | pa.ChunkedArray"


class MartsDisagree(ValueError):
    """A key of one mart is missing from the mart that numbers it: the marts were built apart."""


def _filled(values: Column, default: int) -> np.ndarray:
    """An integer column as int64, a null as ``default``."""
    values = contiguous(values.cast(pa.int64()))
    raw = np.frombuffer(values.buffers()[1], dtype=np.int64, count=len(values), offset=values.offset * 8)
    return np.where(bools(values.is_valid()), raw, default) if values.null_count else raw.copy()


def _value_set(lookup: Column, like: Column) -> pa.Array:
    values = contiguous(lookup)
    return values if values.type == like.type else values.cast(like.type)


def positions(column: Column, lookup: Column, what: str) -> np.ndarray:
    """Each value's position in ``lookup`` (int32; ``lookup`` holds distinct values); a value the
    lookup lacks means the marts disagree: MartsDisagree (a ValueError) naming the first such value."""
    found = pc.index_in(column, value_set=_value_set(lookup, column))
    if found.null_count:
        missing = column.filter(found.is_null())[0].as_py()
        raise MartsDisagree(f"{what} {missing!r} is in one mart but not in another: rebuild the marts (dbt)")
    return to_numpy(found, np.int32)


def numbered(column: Column, known: Column) -> tuple[np.ndarray, int]:
    """Each value's number: its position in ``known``, else ``len(known)`` plus its position among
    the values ``known`` lacks in order of first appearance (how many those are comes second); a
    null is -1."""
    values = contiguous(column)
    found = pc.index_in(values, value_set=_value_set(known, values))
    numbers = _filled(found, -1)
    unknown = values.filter(pc.and_(found.is_null(), values.is_valid()))
    extra = 0
    if len(unknown):
        codes = to_numpy(unknown.dictionary_encode().indices, np.int32)
        _, first = np.unique(codes, return_index=True)  # where each distinct value first appears
        in_order = unknown.take(from_numpy(np.sort(first).astype(np.int64)))
        more = _filled(pc.index_in(values, value_set=in_order), -1)
        numbers = np.where(more >= 0, more + len(known), numbers)
        extra = len(in_order)
    numbers[~bools(values.is_valid())] = -1
    return numbers, extra


def ranks(column: Column) -> tuple[np.ndarray, int]:
    """Each value's position among the distinct values in sorted order, and how many there are."""
    values = contiguous(column)
    distinct = pc.unique(values)
    distinct = distinct.take(pc.sort_indices(distinct))
    return _filled(pc.index_in(values, value_set=distinct), -1), len(distinct)


def counts(column: Column) -> np.ndarray:
    """Integers as int64, a null as 0."""
    return _filled(column, 0)


def flags(column: Column) -> np.ndarray:
    """Booleans as 1/0, a null as 0."""
    return bools(column).astype(np.int8)


def row_order(*keys: tuple[np.ndarray, int]) -> np.ndarray:
    """The permutation that sorts rows by their keys, first key first, equal rows in row order (as
    ``np.lexsort`` with the keys reversed); each key is (positions, a bound every position is below).

    The keys and the row number make one int64 per row when they fit (they do by far for the
    dashboard: days × products × countries × rows is about 2e15), and numpy sorts plain integers
    many times faster than it sorts indexes by several keys."""
    rows = len(keys[0][0])
    span = rows
    for _, bound in keys:
        span *= max(bound, 1)
    if span > np.iinfo(np.int64).max:
        return np.lexsort(tuple(positions for positions, _ in reversed(keys)))
    tagged = np.zeros(rows, dtype=np.int64)
    for positions, bound in keys:
        tagged *= max(bound, 1)
        tagged += positions
    tagged *= max(rows, 1)
    tagged += np.arange(rows, dtype=np.int64)  # the row number last: no two rows are equal
    tagged.sort()
    return tagged % max(rows, 1)


def money_units(column: Column, scale: int) -> np.ndarray | list[int | None]:
    """Exact decimal amounts as integers of ``10**-scale`` pounds (int64; with a null, a list with
    None there); an amount finer than the scale is an error (Arrow refuses to rescale it with
    loss), so is one beyond 64 bits."""
    if not pa.types.is_decimal(column.type):
        raise TypeError(f"money must be a decimal column, not {column.type}")
    if not (isinstance(column.type, pa.Decimal128Type) and column.type.scale == scale):
        column = pc.cast(column, pa.decimal128(38, scale))  # a safe cast: it raises rather than round
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    units = np.empty(len(column), dtype=np.int64)
    start = 0
    for chunk in chunks:
        units[start : start + len(chunk)] = _decimal128_units(chunk)
        start += len(chunk)
    if not column.null_count:
        return units
    listed: list[int | None] = list(units.tolist())
    for i in np.flatnonzero(bools(column.is_null())):
        listed[i] = None
    return listed


def _decimal128_units(values: pa.Array) -> np.ndarray:
    """The unscaled integers of a decimal128 array (a view): Arrow stores each value as a 128-bit
    two's complement integer in units of its scale, two native 64-bit words (the low one first on a
    little-endian machine)."""
    words = np.frombuffer(values.buffers()[1], dtype=np.int64)
    pairs = words[2 * values.offset : 2 * (values.offset + len(values))].reshape(-1, 2)
    low, high = (pairs[:, 0], pairs[:, 1]) if sys.byteorder == "little" else (pairs[:, 1], pairs[:, 0])
    fits = high == (low >> 63)  # the high word only extends the sign
    if values.null_count:
        fits |= bools(values.is_null())
    if not fits.all():
        raise OverflowError("an amount does not fit in 64-bit integer units")
    return low
