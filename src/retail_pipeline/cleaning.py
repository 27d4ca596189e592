"""Cleaning rules: one chunk of source columns → typed sales lines + quarantined rows.

All rules are vectorised Arrow compute; the only Python loop runs over cells that a workbook
reader could not type (reported as cell errors), which are few by nature.

Rules (documented in README, "Cleaning rules"):
- Text is trimmed; blank text becomes null. CustomerID loses a trailing '.0'.
- Numeric text ("6", " 2.55 ") is a number; date text in ISO or UK day-first form is a date.
- A row is quarantined, with the first failing reason of schema.QUARANTINE_REASONS, when a
  required value is blank or cannot be typed, when quantity is fractional or prices carry more
  than schema.PRICE_SCALE decimals, when a value is beyond the configured limits, or when a text
  cell is longer than the configured limit.
- Everything else is kept and classified into a line_type (schema.LINE_TYPES); exact duplicates
  within a source are removed later, per month partition (see ingest.py).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .config import Limits
from .reader import Chunk
from .schema import PRICE_SCALE, SOURCE_FIELDS, arrow_schema

NUMBER_RE = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"
DATE_FORMATS = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%d/%m/%Y %H:%M:%S",
                "%d/%m/%Y %H:%M", "%d/%m/%Y"]
POSTAGE = ["POST", "DOT", "C2"]
FEES = ["BANK CHARGES", "AMAZONFEE", "CRUK"]
DISCOUNT = ["D"]
NON_PRODUCT = ["M", "m", "S", "PADS", "B"]
NON_PRODUCT_PREFIXES = ["gift_0001", "DCGS"]
TEXT_FIELDS = ["invoice_no", "stock_code", "description", "customer_id", "country"]


def _clean_text(arr: pa.ChunkedArray) -> pa.ChunkedArray:
    if not pa.types.is_string(arr.type) and not pa.types.is_large_string(arr.type):
        arr = pc.cast(arr, pa.string())
    trimmed = pc.utf8_trim_whitespace(arr)
    return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)


def _parse_number(arr: pa.ChunkedArray, errors: dict[int, str]) -> tuple[pa.Array, pa.Array]:
    """(float64 values, raw text of cells that are present but not numbers) for a numeric field."""
    if pa.types.is_floating(arr.type) or pa.types.is_integer(arr.type) or pa.types.is_decimal(arr.type):
        values = pc.cast(arr, pa.float64())
        bad = [None] * len(arr)
        for row, raw in errors.items():
            text = raw.strip()
            try:  # a cell the reader could not type may still be number text ("1,5" is not)
                number = float(text) if text else None
            except ValueError:
                bad[row] = raw
                continue
            if number is not None:
                values = _set(values, row, number)
        return values, pa.array(bad, pa.string())
    text = pc.utf8_trim_whitespace(pc.cast(arr, pa.string()))
    ok = pc.match_substring_regex(text, NUMBER_RE)
    blank = pc.or_kleene(pc.is_null(text), pc.equal(text, ""))
    values = pc.cast(pc.if_else(ok, text, pa.scalar(None, pa.string())), pa.float64())
    bad = pc.if_else(pc.or_kleene(ok, blank), pa.scalar(None, pa.string()), arr)
    return values, bad


def _set(arr: pa.Array, row: int, value) -> pa.Array:
    mask = np.zeros(len(arr), dtype=bool)
    mask[row] = True
    return pc.if_else(pa.array(mask), pa.scalar(value, arr.type), arr)


def _parse_text_date(text: str) -> datetime | None:
    text = text.strip()
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def _parse_dates(arr: pa.ChunkedArray, errors: dict[int, str]) -> tuple[pa.Array, pa.Array]:
    """(timestamp[us] values, raw text of cells that are present but not dates)."""
    if pa.types.is_timestamp(arr.type):
        values = pc.cast(arr, pa.timestamp("us")) if arr.type.tz is None else pc.cast(
            pc.local_timestamp(arr), pa.timestamp("us"))
        raw_bad: dict[int, str] = {}
        fixed: dict[int, datetime] = {}
        for row, raw in errors.items():
            parsed = _parse_text_date(raw)
            if parsed is None:
                raw_bad[row] = raw
            else:
                fixed[row] = parsed
        if fixed:
            py = values.to_pylist()
            for row, value in fixed.items():
                py[row] = value
            values = pa.array(py, pa.timestamp("us"))
        bad = [None] * len(arr)
        for row, raw in raw_bad.items():
            bad[row] = raw
        return values, pa.array(bad, pa.string())
    if pa.types.is_date(arr.type):
        return pc.cast(pc.cast(arr, pa.date32()), pa.timestamp("us")), pa.nulls(len(arr), pa.string())
    text = pc.utf8_trim_whitespace(pc.cast(arr, pa.string()))
    values = None
    for fmt in DATE_FORMATS:
        parsed = pc.strptime(text, format=fmt, unit="us", error_is_null=True)
        values = parsed if values is None else pc.coalesce(values, parsed)
    blank = pc.or_kleene(pc.is_null(text), pc.equal(text, ""))
    bad = pc.if_else(pc.or_kleene(pc.is_valid(values), blank), pa.scalar(None, pa.string()), arr)
    return values, bad


def _contiguous(col) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        return col.chunk(0) if col.num_chunks == 1 else (col.combine_chunks() if col.num_chunks else pa.array([], col.type))
    return col


def _starts_with_any(arr, prefixes: list[str]):
    out = None
    for prefix in prefixes:
        m = pc.starts_with(arr, prefix)
        out = m if out is None else pc.or_(out, m)
    return out


def classify(invoice_no, stock_code, quantity, unit_price, customer_id) -> pa.Array:
    """line_type by precedence: A invoice, C invoice, postage, fee, discount, other non-product,
    stock adjustment (negative quantity, or zero price and no customer), free item, sale."""
    inv = pc.fill_null(invoice_no, "")
    code = pc.fill_null(stock_code, "")
    conditions = [
        pc.starts_with(inv, "A"),
        pc.starts_with(inv, "C"),
        pc.is_in(code, pa.array(POSTAGE)),
        pc.is_in(code, pa.array(FEES)),
        pc.is_in(code, pa.array(DISCOUNT)),
        pc.or_(pc.is_in(code, pa.array(NON_PRODUCT)), _starts_with_any(code, NON_PRODUCT_PREFIXES)),
        pc.or_(pc.less(quantity, 0), pc.and_(pc.equal(unit_price, 0), pc.is_null(customer_id))),
        pc.equal(unit_price, 0),
    ]
    labels = ["bad_debt_adjustment", "cancellation", "postage", "fee", "discount", "non_product",
              "stock_adjustment", "free_item"]
    conds = pa.StructArray.from_arrays([_contiguous(pc.fill_null(c, False)) for c in conditions], names=labels)
    return pc.case_when(conds, *[pa.scalar(l) for l in labels], pa.scalar("sale"))


def clean_chunk(chunk: Chunk, lineage: dict, limits: Limits) -> tuple[pa.Table, pa.Table]:
    """Typed sales lines (schema 'sales_lines') and quarantined rows (schema 'quarantine')."""
    t = {f: _contiguous(chunk.table[f]) for f in SOURCE_FIELDS}
    n = chunk.table.num_rows
    errors = chunk.cell_errors
    text = {f: _clean_text(t[f]) for f in TEXT_FIELDS}
    customer = pc.replace_substring_regex(text["customer_id"], r"\.0+$", "")
    quantity, quantity_bad = _parse_number(t["quantity"], errors.get("quantity", {}))
    price, price_bad = _parse_number(t["unit_price"], errors.get("unit_price", {}))
    when, date_bad = _parse_dates(t["invoice_date"], errors.get("invoice_date", {}))

    too_long = None
    for f in TEXT_FIELDS:
        long_f = pc.greater(pc.fill_null(pc.utf8_length(t[f] if pa.types.is_string(t[f].type) else text[f]), 0),
                            limits.max_cell_chars)
        too_long = long_f if too_long is None else pc.or_(too_long, long_f)

    scaled = pc.multiply(price, 10**PRICE_SCALE)
    checks = [
        ("missing_invoice_no", pc.is_null(text["invoice_no"])),
        ("missing_stock_code", pc.is_null(text["stock_code"])),
        ("bad_quantity", pc.is_valid(quantity_bad)),
        ("missing_quantity", pc.is_null(quantity)),
        ("quantity_not_integer", pc.not_equal(quantity, pc.round(quantity))),
        ("quantity_out_of_range", pc.greater(pc.abs(quantity), limits.max_abs_quantity)),
        ("bad_invoice_date", pc.is_valid(date_bad)),
        ("missing_invoice_date", pc.is_null(when)),
        ("bad_unit_price", pc.is_valid(price_bad)),
        ("missing_unit_price", pc.is_null(price)),
        ("unit_price_out_of_range", pc.greater(pc.abs(price), limits.max_abs_unit_price)),
        ("unit_price_precision", pc.greater(pc.abs(pc.subtract(scaled, pc.round(scaled))), 1e-6)),
        ("cell_too_long", too_long),
    ]
    codes = [c for c, _ in checks]
    conds = pa.StructArray.from_arrays([_contiguous(pc.fill_null(m, False)) for _, m in checks], names=codes)
    reason = pc.case_when(conds, *[pa.scalar(c) for c in codes], pa.scalar(None, pa.string()))
    bad_mask = pc.is_valid(reason)
    good_mask = pc.invert(bad_mask)
    rows = pa.array(np.arange(chunk.first_row, chunk.first_row + n, dtype=np.int64))

    def lineage_cols(mask, count):
        return {
            "source_uri": pa.array([lineage["source_uri"]] * count, pa.string()),
            "source_generation": pa.array(np.full(count, lineage["source_generation"], dtype=np.int64)),
            "batch_id": pa.array([lineage["batch_id"]] * count, pa.string()),
            "source_sheet": pa.array([chunk.sheet] * count, pa.string()),
            "source_row": pc.filter(rows, mask),
        }

    n_good = pc.sum(good_mask).as_py() or 0
    g = lambda arr: pc.filter(arr, good_mask)  # noqa: E731
    g_when = g(when)
    g_qty = pc.cast(g(quantity), pa.int64())
    g_price = pc.cast(pc.round(g(price), PRICE_SCALE), pa.decimal128(18, PRICE_SCALE))
    g_inv, g_code, g_cust = g(text["invoice_no"]), g(text["stock_code"]), g(customer)
    g_date = pc.cast(g_when, pa.date32())
    month = pc.cast(pc.floor_temporal(g_when, unit="month"), pa.date32())
    good = pa.table({
        "invoice_no": g_inv,
        "stock_code": g_code,
        "description": g(text["description"]),
        "quantity": g_qty,
        "invoice_datetime": g_when,
        "invoice_date": g_date,
        "unit_price": g_price,
        "customer_id": g_cust,
        "country": g(text["country"]),
        "line_type": classify(g_inv, g_code, g_qty, g_price, g_cust),
        "invoice_month": month,
        **lineage_cols(good_mask, n_good),
    })
    good = good.cast(arrow_schema("sales_lines"))

    n_bad = n - n_good
    if n_bad == 0:
        return good, pa.Table.from_batches([], arrow_schema("quarantine"))
    b = lambda arr: pc.filter(arr, bad_mask)  # noqa: E731
    raw = {}
    for f in SOURCE_FIELDS:
        col = t[f]
        as_text = pc.cast(col, pa.string()) if not pa.types.is_string(col.type) else col
        override = {"quantity": quantity_bad, "unit_price": price_bad, "invoice_date": date_bad}.get(f)
        if override is None and errors.get(f):
            override = pa.array([errors[f].get(i) for i in range(n)], pa.string())
        if override is not None:
            as_text = pc.coalesce(override, as_text)
        raw[f"raw_{f}"] = b(as_text)
    bad_reason = b(reason)
    quarantine = pa.table({
        **raw,
        "reason": bad_reason,
        "detail": _details(bad_reason),
        **lineage_cols(bad_mask, n_bad),
    })
    return good, quarantine.cast(arrow_schema("quarantine"))


def _details(reasons: pa.Array) -> pa.Array:
    from .schema import QUARANTINE_REASONS

    keys = pa.array(list(QUARANTINE_REASONS))
    values = pa.array(list(QUARANTINE_REASONS.values()))
    return pc.take(values, pc.index_in(reasons, keys))
