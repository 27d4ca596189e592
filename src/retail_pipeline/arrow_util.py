"""Arrow values built from buffers, never from Python objects.

pyarrow's ``pa.scalar``/``pa.array`` import pandas on first use (~0.3 s, ~50 MB), which the
ingest path never needs otherwise; these helpers build the same values from numpy memory and
raw buffers. Shared by the readers, the cleaning rules, the deduplication and the month split.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa


def from_numpy(values: np.ndarray, type: pa.DataType | None = None) -> pa.Array:
    """A null-free Arrow array over a numpy array's memory (booleans are bit-packed)."""
    values = np.ascontiguousarray(values)
    if values.dtype == np.bool_:
        bits = np.packbits(values, bitorder="little")
        return pa.Array.from_buffers(pa.bool_(), len(values), [None, pa.py_buffer(bits)])
    return pa.Array.from_buffers(type or pa.from_numpy_dtype(values.dtype), len(values), [None, pa.py_buffer(values)])


def contiguous(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One array for a column: its only chunk, its chunks combined, or an empty array."""
    if isinstance(col, pa.ChunkedArray):
        if col.num_chunks == 1:
            return col.chunk(0)
        return col.combine_chunks() if col.num_chunks else pa.nulls(0, col.type)
    return col


def to_numpy(arr: pa.Array | pa.ChunkedArray, dtype: type) -> np.ndarray:
    """A read-only numpy view of a null-free fixed-width array (int32, int64, ...)."""
    arr = contiguous(arr)
    if arr.null_count:
        raise ValueError("to_numpy needs an array without nulls")
    item = np.dtype(dtype).itemsize
    return np.frombuffer(arr.buffers()[1], dtype=dtype, count=len(arr), offset=arr.offset * item)


def bools(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean array as numpy booleans, null = False."""
    arr = contiguous(arr)
    n = len(arr)
    if n == 0:
        return np.zeros(0, dtype=np.bool_)
    values = np.unpackbits(np.frombuffer(arr.buffers()[1], dtype=np.uint8), count=arr.offset + n, bitorder="little")[
        arr.offset :
    ].view(np.bool_)
    if arr.null_count:
        valid = np.unpackbits(np.frombuffer(arr.buffers()[0], dtype=np.uint8), count=arr.offset + n, bitorder="little")[
            arr.offset :
        ].view(np.bool_)
        values = values & valid
    return values


def decimals(scaled: np.ndarray, type: pa.Decimal128Type) -> pa.Array:
    """A null-free decimal128 array from its unscaled integers (e.g. 25500 → 2.5500 at scale 4)."""
    words = np.empty((len(scaled), 2), dtype=np.int64)
    words[:, 0] = scaled
    words[:, 1] = scaled >> 63  # two's complement: the high word is the sign
    return pa.Array.from_buffers(type, len(scaled), [None, pa.py_buffer(words)])


def strings(values: Sequence[str | None]) -> pa.Array:
    """A string array from Python text (None = null)."""
    encoded = [None if v is None else str(v).encode() for v in values]
    lengths = np.fromiter((0 if e is None else len(e) for e in encoded), dtype=np.int64, count=len(encoded))
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    data = b"".join(e for e in encoded if e is not None)
    valid = np.fromiter((e is not None for e in encoded), dtype=np.bool_, count=len(encoded))
    nulls = len(encoded) - int(valid.sum())
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
    return pa.StringArray.from_buffers(len(encoded), pa.py_buffer(offsets), pa.py_buffer(data), bitmap, nulls)


def sparse_strings(length: int, cells: dict[int, str]) -> pa.Array:
    """A string array of `length` nulls, except the given {row: text} cells."""
    values: list[str | None] = [None] * length
    for row, text in cells.items():
        values[row] = text
    return strings(values)


def sparse_values(
    length: int, cells: dict[int, int] | dict[int, float], dtype: type, arrow_type: pa.DataType
) -> pa.Array:
    """An array of `length` nulls, except the given {row: value} cells (numbers or timestamps)."""
    values: np.ndarray = np.zeros(length, dtype=dtype)
    valid = np.zeros(length, dtype=np.bool_)
    for row, value in cells.items():
        values[row] = value
        valid[row] = True
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(arrow_type, length, [bitmap, pa.py_buffer(values)], null_count=length - len(cells))


def lit(value: Any, type: pa.DataType | None = None) -> pa.Scalar:
    """An Arrow scalar: str → string, bool → bool, int → int64, float → float64, None → null of `type`."""
    if value is None:
        return pa.nulls(1, type or pa.null())[0]
    if isinstance(value, str):
        scalar = strings([value])[0]
    elif isinstance(value, bool):
        scalar = from_numpy(np.array([value], dtype=np.bool_))[0]
    elif isinstance(value, int):
        scalar = from_numpy(np.array([value], dtype=np.int64))[0]
    else:
        scalar = from_numpy(np.array([value], dtype=np.float64))[0]
    return scalar if type is None or scalar.type == type else scalar.cast(type)


def constant(value: Any, length: int, type: pa.DataType | None = None) -> pa.Array:
    """`value` repeated `length` times."""
    return pa.repeat(lit(value, type), length)
