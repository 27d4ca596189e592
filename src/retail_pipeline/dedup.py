"""Exact duplicates: which rows of a table are the first of each set of equal rows.

No Arrow ``group_by`` (whose Acero import alone costs more than half a second): a hash of the
fixed-width key columns picks the few candidate rows, which are then compared exactly on
dictionary codes of every key column, packed into 64-bit words. The hash only chooses
candidates; equality is decided on codes, so the result is exact.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .arrow_util import contiguous, from_numpy, lit, to_numpy

#: the columns on which two typed sales lines are the same line
DEDUP_KEYS = [
    "invoice_no",
    "stock_code",
    "description",
    "quantity",
    "invoice_datetime",
    "unit_price",
    "customer_id",
    "country",
]


def keep_mask(table: pa.Table, keys: list[str] = DEDUP_KEYS) -> np.ndarray | None:
    """A boolean mask of the rows to keep (the first of each set of equal rows, nulls equal);
    None when no two rows are equal."""
    keep = first_of_each(table, keys)
    if keep is None:
        return None
    mask = np.zeros(table.num_rows, dtype=bool)
    mask[keep] = True
    return mask


def first_of_each(table: pa.Table, keys: list[str]) -> np.ndarray | None:
    """Row indices (ascending) of the first row of each set of rows equal on `keys` (nulls are
    equal); None when no two rows are equal.

    Rows whose fixed-width keys hash uniquely cannot have an equal row: one sort of a 64-bit
    mix of those columns finds the few candidates. Only the candidates get exact keys: each key
    column becomes dense dictionary codes (Arrow hashing), packed side by side into 64-bit
    words, and a stable sort on the words puts equal rows together, the first one first.
    """
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


def _fixed_width_hash(table: pa.Table, keys: list[str]) -> np.ndarray:
    """A 64-bit mix of the key columns that are fixed-width and null-free (numbers, times,
    decimals), read straight from their buffers; zeros when there are none. Equal rows always
    get equal values; unequal rows rarely do."""
    n = table.num_rows
    mixed = np.zeros(n, dtype=np.uint64)
    for key in keys:
        col = contiguous(table[key])
        fixed = not pa.types.is_boolean(col.type) and (pa.types.is_primitive(col.type) or pa.types.is_decimal(col.type))
        width = col.type.byte_width if fixed else 0
        if col.null_count or width not in (4, 8, 16):
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


def _dense_codes(values: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, int]:
    """Dense integer codes of an array's values (null = 0), numbered in order of first appearance,
    and how many distinct codes there are."""
    encoded = pc.dictionary_encode(contiguous(values))
    codes = to_numpy(pc.fill_null(pc.add(encoded.indices.cast(pa.int64()), lit(1)), lit(0)), np.int64)
    return codes.astype(np.uint64), len(encoded.dictionary) + 1


def _pack(columns: Iterable[tuple[np.ndarray, int]], n: int) -> list[np.ndarray]:
    """(codes, cardinality) columns packed side by side into as few uint64 words as fit."""
    words: list[np.ndarray] = []
    word, used = np.zeros(n, dtype=np.uint64), 0
    for codes, cardinality in columns:
        bits = max(1, int(cardinality - 1).bit_length())
        if used + bits > 64:
            words.append(word)
            word, used = np.zeros(n, dtype=np.uint64), 0
        word |= codes << np.uint64(used)
        used += bits
    words.append(word)
    return words
