"""Cleaning rules: one chunk of source columns → typed sales lines + quarantined rows.

All rules are vectorised Arrow compute; the only Python loop runs over cells that a workbook
reader could not type (reported as cell errors), which are few by nature.

Rules (documented in README, "Cleaning rules"):
- Text is trimmed; blank text becomes null. CustomerID loses a trailing '.0'.
- Numeric text ("6", " 2.55 ") is a number; date text in ISO or UK day-first form is a date
  (cell_typing.py).
- A row is quarantined, with the first failing reason of schema.QUARANTINE_REASONS, when a
  required value is blank or cannot be typed, when quantity is fractional or prices carry more
  than schema.PRICE_SCALE decimals, when a value is beyond the configured limits, or when a text
  cell is longer than the configured limit.
- Everything else is kept and classified into a line_type (line_types.py); exact duplicates
  within a source are removed later, per month partition (dedup.py).

Speed notes: every rule that finds nothing on a chunk costs one cheap scan (e.g. the longest
cell in bytes, "any '.' in CustomerID") and skips its expensive form. Arrow values are built
from buffers (arrow_util.py), never from Python objects.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .arrow_util import constant, contiguous, decimals, from_numpy, lit, sparse_strings, strings, to_numpy
from .cell_typing import NULL_TEXT, ZERO32, clean_text, parse_dates, parse_number, strip_point_zero
from .chunk import Chunk
from .config import Limits
from .line_types import classify
from .schema import PRICE_SCALE, QUARANTINE_REASONS, SOURCE_FIELDS, arrow_schema

TEXT_FIELDS = ["invoice_no", "stock_code", "description", "customer_id", "country"]
#: columns that are the same on every row of a batch: left out here, added when a partition is written
BATCH_CONSTANTS = ["source_uri", "source_generation", "batch_id"]
FALSE = lit(False)
PRICE_TYPE = pa.decimal128(18, PRICE_SCALE)


def _too_long(t: dict[str, pa.Array], text: dict[str, pa.Array], limit: int) -> pa.Array | None:
    """Rows with a text cell longer than `limit` characters, or None when no cell can be."""
    out = None
    for f in TEXT_FIELDS:
        src = t[f] if pa.types.is_string(t[f].type) else text[f]
        longest = pc.max(pc.binary_length(src)).as_py()  # bytes ≥ characters: a cheap upper bound
        if longest is None or longest <= limit:
            continue
        long_f = pc.greater(pc.fill_null(pc.utf8_length(src), ZERO32), lit(limit, pa.int32()))
        out = long_f if out is None else pc.or_(out, long_f)
    return out


def clean_rows(chunk: Chunk, limits: Limits) -> tuple[pa.Table, pa.Table]:
    """Typed rows and quarantined rows of a chunk, without the batch-constant lineage columns
    (BATCH_CONSTANTS: lake_parquet.add_lineage adds them per partition as it is written).

    Rows with no value in any of the eight cells are neither: they are not data rows.
    """
    t = {f: contiguous(chunk.table[f]) for f in SOURCE_FIELDS}
    n = chunk.table.num_rows
    errors = chunk.cell_errors
    text = {f: clean_text(t[f]) for f in TEXT_FIELDS}
    customer = strip_point_zero(text["customer_id"])
    quantity, quantity_bad = parse_number(t["quantity"], errors.get("quantity", {}))
    price, price_bad = parse_number(t["unit_price"], errors.get("unit_price", {}))
    when, date_bad = parse_dates(t["invoice_date"], errors.get("invoice_date", {}))
    too_long = _too_long(t, text, limits.max_cell_chars)

    scaled = pc.multiply(price, lit(float(10**PRICE_SCALE)))
    checks = [
        ("missing_invoice_no", pc.is_null(text["invoice_no"])),
        ("missing_stock_code", pc.is_null(text["stock_code"])),
        ("bad_quantity", pc.is_valid(quantity_bad)),
        ("missing_quantity", pc.is_null(quantity)),
        ("quantity_not_integer", pc.not_equal(quantity, pc.round(quantity))),
        ("quantity_out_of_range", pc.greater(pc.abs(quantity), lit(float(limits.max_abs_quantity)))),
        ("bad_invoice_date", pc.is_valid(date_bad)),
        ("missing_invoice_date", pc.is_null(when)),
        ("bad_unit_price", pc.is_valid(price_bad)),
        ("missing_unit_price", pc.is_null(price)),
        ("unit_price_out_of_range", pc.greater(pc.abs(price), lit(float(limits.max_abs_unit_price)))),
        ("unit_price_precision", pc.greater(pc.abs(pc.subtract(scaled, pc.round(scaled))), lit(1e-6))),
        ("cell_too_long", too_long if too_long is not None else pa.nulls(n, pa.bool_())),
    ]
    masks = [contiguous(pc.fill_null(m, FALSE)) for _, m in checks]
    any_bad = masks[0]
    for m in masks[1:]:
        any_bad = pc.or_(any_bad, m)
    # a row with no value in any of the eight cells holds no data: it is skipped, not quarantined
    blank = None
    for f in SOURCE_FIELDS:
        empty = pc.is_null(text[f] if f in text else t[f])
        if errors.get(f):
            empty = pc.and_(empty, pc.invert(from_numpy(np.isin(np.arange(n), list(errors[f])))))
        blank = empty if blank is None else pc.and_(blank, empty)
    blank = contiguous(pc.fill_null(blank, FALSE))
    n_blank = pc.sum(blank).as_py() or 0
    if n_blank:
        masks = [contiguous(pc.and_(m, pc.invert(blank))) for m in masks]
        any_bad = pc.and_(any_bad, pc.invert(blank))
    n_bad = pc.sum(any_bad).as_py() or 0
    rows = from_numpy(np.arange(chunk.first_row, chunk.first_row + n, dtype=np.int64))
    sheet_type = arrow_schema("sales_lines").field("source_sheet").type

    if n_bad or n_blank:
        codes = [c for c, _ in checks]
        reason = pc.case_when(pa.StructArray.from_arrays(masks, names=codes), *[lit(c) for c in codes], NULL_TEXT)
        good_mask = pc.and_(pc.invert(any_bad), pc.invert(blank))
        g = lambda arr: pc.filter(arr, good_mask)  # noqa: E731
    else:
        g = lambda arr: arr  # noqa: E731
    n_good = n - n_bad - n_blank
    g_when = g(when)
    g_qty = pc.cast(g(quantity), pa.int64())
    g_price = _price_decimals(g(price))
    g_inv, g_code, g_cust = g(text["invoice_no"]), g(text["stock_code"]), g(customer)
    good = pa.table(
        {
            "invoice_no": g_inv,
            "stock_code": g_code,
            "description": g(text["description"]),
            "quantity": g_qty,
            "invoice_datetime": g_when,
            "invoice_date": pc.cast(g_when, pa.date32()),
            "unit_price": g_price,
            "customer_id": g_cust,
            "country": g(text["country"]),
            "line_type": classify(g_inv, g_code, g_qty, g_price, g_cust),
            "invoice_month": pc.cast(pc.floor_temporal(g_when, unit="month"), pa.date32()),
            "source_sheet": constant(chunk.sheet, n_good, sheet_type),
            "source_row": g(rows),
        }
    )
    if n_bad == 0:
        return good, _without_constants(pa.Table.from_batches([], arrow_schema("quarantine")))

    b = lambda arr: pc.filter(arr, any_bad)  # noqa: E731
    raw = {}
    for f in SOURCE_FIELDS:
        col = t[f]
        as_text = pc.cast(col, pa.string()) if not pa.types.is_string(col.type) else col
        override = {"quantity": quantity_bad, "unit_price": price_bad, "invoice_date": date_bad}.get(f)
        if override is None and errors.get(f):
            override = sparse_strings(n, errors[f])
        if override is not None:
            as_text = pc.coalesce(override, as_text)
        raw[f"raw_{f}"] = b(as_text)
    bad_reason = b(reason)
    quarantine = pa.table(
        {
            **raw,
            "reason": bad_reason,
            "detail": _details(bad_reason),
            "source_sheet": constant(chunk.sheet, n_bad, sheet_type),
            "source_row": b(rows),
        }
    )
    return good, quarantine


def _price_decimals(price: pa.Array) -> pa.Array:
    """Prices (float64, at most PRICE_SCALE decimals: the precision rule quarantines the rest) as
    decimals, from the scaled integers: the same values as Arrow's round and float → decimal cast,
    at half the cost."""
    if price.null_count:
        return pc.cast(pc.round(price, PRICE_SCALE), PRICE_TYPE)
    scaled = np.rint(to_numpy(price, np.float64) * float(10**PRICE_SCALE)).astype(np.int64)
    return decimals(scaled, PRICE_TYPE)


def _without_constants(table: pa.Table) -> pa.Table:
    return table.drop_columns([c for c in BATCH_CONSTANTS if c in table.column_names])


def _details(reasons: pa.Array) -> pa.Array:
    keys = strings(list(QUARANTINE_REASONS))
    values = strings(list(QUARANTINE_REASONS.values()))
    return pc.take(values, pc.index_in(reasons, keys))
