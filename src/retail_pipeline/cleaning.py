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

Speed notes: every rule that finds nothing on a chunk costs one cheap scan (e.g. the longest
cell in bytes, "any '.' in CustomerID") and skips its expensive form. Arrow values are built
from buffers (:func:`strings`, :func:`lit`, :func:`from_numpy`), never from Python objects:
pyarrow's ``pa.scalar``/``pa.array`` import pandas on first use (~0.3 s, ~50 MB), which the
ingest path never needs otherwise.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .config import Limits
from .reader import Chunk
from .schema import PRICE_SCALE, QUARANTINE_REASONS, SOURCE_FIELDS, arrow_schema

NUMBER_RE = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"
DATE_FORMATS = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%d/%m/%Y %H:%M:%S",
                "%d/%m/%Y %H:%M", "%d/%m/%Y"]
POSTAGE = ["POST", "DOT", "C2"]
FEES = ["BANK CHARGES", "AMAZONFEE", "CRUK"]
DISCOUNT = ["D"]
NON_PRODUCT = ["M", "m", "S", "PADS", "B"]
NON_PRODUCT_PREFIXES = ["gift_0001", "DCGS"]
TEXT_FIELDS = ["invoice_no", "stock_code", "description", "customer_id", "country"]
#: columns that are the same on every row of a batch; added when a partition is written
BATCH_CONSTANTS = ["source_uri", "source_generation", "batch_id"]
EPOCH = datetime(1970, 1, 1)


# --- Arrow values without pyarrow's Python-object conversion -------------------------------------

def from_numpy(values: np.ndarray, type: pa.DataType | None = None) -> pa.Array:
    """A null-free Arrow array over a numpy array's memory (booleans are bit-packed)."""
    values = np.ascontiguousarray(values)
    if values.dtype == np.bool_:
        bits = np.packbits(values, bitorder="little")
        return pa.Array.from_buffers(pa.bool_(), len(values), [None, pa.py_buffer(bits)])
    return pa.Array.from_buffers(type or pa.from_numpy_dtype(values.dtype), len(values), [None, pa.py_buffer(values)])


def to_numpy(arr: pa.Array | pa.ChunkedArray, dtype: type) -> np.ndarray:
    """A read-only numpy view of a null-free fixed-width array (int32, int64, ...)."""
    arr = _contiguous(arr)
    if arr.null_count:
        raise ValueError("to_numpy needs an array without nulls")
    item = np.dtype(dtype).itemsize
    return np.frombuffer(arr.buffers()[1], dtype=dtype, count=len(arr), offset=arr.offset * item)


def strings(values: list[str | None]) -> pa.Array:
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


def lit(value, type: pa.DataType | None = None) -> pa.Scalar:
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


def constant(value, length: int, type: pa.DataType | None = None) -> pa.Array:
    """`value` repeated `length` times."""
    return pa.repeat(lit(value, type), length)


NULL_TEXT = lit(None, pa.string())
ZERO32 = lit(0, pa.int32())
FALSE = lit(False)
_SETS = {name: strings(values) for name, values in
         {"postage": POSTAGE, "fees": FEES, "discount": DISCOUNT, "non_product": NON_PRODUCT}.items()}


# --- typing ------------------------------------------------------------------------------------

def _clean_text(arr: pa.ChunkedArray) -> pa.Array:
    if not pa.types.is_string(arr.type) and not pa.types.is_large_string(arr.type):
        arr = pc.cast(arr, pa.string())
    trimmed = pc.utf8_trim_whitespace(arr)
    lengths = pc.binary_length(trimmed)
    blank = pc.equal(lengths, _zero(lengths.type))
    if not pc.any(blank).as_py():
        return trimmed
    return pc.if_else(blank, NULL_TEXT, trimmed)


def _strip_point_zero(customer: pa.Array) -> pa.Array:
    """'17850.0' → '17850' (a numeric cell read as text); only scans again when some id has a '.'."""
    if not pc.any(pc.match_substring(customer, ".")).as_py():
        return customer
    return pc.replace_substring_regex(customer, r"\.0+$", "")


def _parse_number(arr: pa.ChunkedArray, errors: dict[int, str]) -> tuple[pa.Array, pa.Array]:
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
            values = pc.coalesce(_sparse(n, fixed, np.float64, pa.float64()), values)
        return values, sparse_strings(n, bad)
    text = pc.utf8_trim_whitespace(pc.cast(arr, pa.string()))
    ok = pc.match_substring_regex(text, NUMBER_RE)
    blank = pc.or_kleene(pc.is_null(text), pc.equal(pc.binary_length(text), ZERO32))
    values = pc.cast(pc.if_else(ok, text, NULL_TEXT), pa.float64())
    bad = pc.if_else(pc.or_kleene(ok, blank), NULL_TEXT, pc.cast(arr, pa.string()))
    return values, bad


def _sparse(length: int, cells: dict[int, int | float], dtype: type, arrow_type: pa.DataType) -> pa.Array:
    """An array of `length` nulls, except the given {row: value} cells."""
    values = np.zeros(length, dtype=dtype)
    valid = np.zeros(length, dtype=np.bool_)
    for row, value in cells.items():
        values[row] = value
        valid[row] = True
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(arrow_type, length, [bitmap, pa.py_buffer(values)], null_count=length - len(cells))


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
    n = len(arr)
    if pa.types.is_timestamp(arr.type):
        values = pc.cast(arr, pa.timestamp("us")) if arr.type.tz is None else pc.cast(
            pc.local_timestamp(arr), pa.timestamp("us"))
        if not errors:
            return values, pa.nulls(n, pa.string())
        raw_bad: dict[int, str] = {}
        fixed: dict[int, int] = {}
        for row, raw in errors.items():
            parsed = _parse_text_date(raw)
            if parsed is None:
                raw_bad[row] = raw
            else:
                fixed[row] = (parsed - EPOCH) // timedelta(microseconds=1)
        if fixed:
            values = pc.coalesce(_sparse(n, fixed, np.int64, pa.timestamp("us")), values)
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


def _contiguous(col) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        if col.num_chunks == 1:
            return col.chunk(0)
        return col.combine_chunks() if col.num_chunks else pa.nulls(0, col.type)
    return col


def _starts_with_any(arr, prefixes: list[str]):
    out = None
    for prefix in prefixes:
        m = pc.starts_with(arr, prefix)
        out = m if out is None else pc.or_(out, m)
    return out


def _zero(type: pa.DataType) -> pa.Scalar:
    return (lit(0.0) if pa.types.is_decimal(type) else lit(0)).cast(type)


def classify(invoice_no, stock_code, quantity, unit_price, customer_id) -> pa.Array:
    """line_type by precedence: A invoice, C invoice, postage, fee, discount, other non-product,
    stock adjustment (negative quantity, or zero price and no customer), free item, sale."""
    inv = pc.fill_null(invoice_no, lit(""))
    code = pc.fill_null(stock_code, lit(""))
    price_zero = pc.equal(unit_price, _zero(unit_price.type))
    conditions = [
        pc.starts_with(inv, "A"),
        pc.starts_with(inv, "C"),
        pc.is_in(code, _SETS["postage"]),
        pc.is_in(code, _SETS["fees"]),
        pc.is_in(code, _SETS["discount"]),
        pc.or_(pc.is_in(code, _SETS["non_product"]), _starts_with_any(code, NON_PRODUCT_PREFIXES)),
        pc.or_(pc.less(quantity, _zero(quantity.type)), pc.and_(price_zero, pc.is_null(customer_id))),
        price_zero,
    ]
    labels = ["bad_debt_adjustment", "cancellation", "postage", "fee", "discount", "non_product",
              "stock_adjustment", "free_item"]
    conds = pa.StructArray.from_arrays([_contiguous(pc.fill_null(c, FALSE)) for c in conditions], names=labels)
    return pc.case_when(conds, *[lit(label) for label in labels], lit("sale"))


def _too_long(t: dict, text: dict, limit: int):
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
    """Typed rows and quarantined rows of a chunk, without the batch-constant lineage columns.

    Same as :func:`clean_chunk` minus source_uri, source_generation and batch_id (see
    :func:`add_lineage`): the ingest adds those per partition when it writes, so buffered rows
    do not carry the same long strings on every row.
    """
    t = {f: _contiguous(chunk.table[f]) for f in SOURCE_FIELDS}
    n = chunk.table.num_rows
    errors = chunk.cell_errors
    text = {f: _clean_text(t[f]) for f in TEXT_FIELDS}
    customer = _strip_point_zero(text["customer_id"])
    quantity, quantity_bad = _parse_number(t["quantity"], errors.get("quantity", {}))
    price, price_bad = _parse_number(t["unit_price"], errors.get("unit_price", {}))
    when, date_bad = _parse_dates(t["invoice_date"], errors.get("invoice_date", {}))
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
    masks = [_contiguous(pc.fill_null(m, FALSE)) for _, m in checks]
    any_bad = masks[0]
    for m in masks[1:]:
        any_bad = pc.or_(any_bad, m)
    # a row with no value in any of the eight cells holds no data: it is skipped, not quarantined
    blank = None
    for f in SOURCE_FIELDS:
        empty = pc.is_null(text[f] if f in text else t[f])
        if f in errors and errors[f]:
            empty = pc.and_(empty, pc.invert(from_numpy(np.isin(np.arange(n), list(errors[f])))))
        blank = empty if blank is None else pc.and_(blank, empty)
    blank = _contiguous(pc.fill_null(blank, FALSE))
    n_blank = pc.sum(blank).as_py() or 0
    if n_blank:
        masks = [_contiguous(pc.and_(m, pc.invert(blank))) for m in masks]
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
    g_price = pc.cast(pc.round(g(price), PRICE_SCALE), pa.decimal128(18, PRICE_SCALE))
    g_inv, g_code, g_cust = g(text["invoice_no"]), g(text["stock_code"]), g(customer)
    good = pa.table({
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
    })
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
    quarantine = pa.table({
        **raw,
        "reason": bad_reason,
        "detail": _details(bad_reason),
        "source_sheet": constant(chunk.sheet, n_bad, sheet_type),
        "source_row": b(rows),
    })
    return good, quarantine


def _without_constants(table: pa.Table) -> pa.Table:
    return table.drop_columns([c for c in BATCH_CONSTANTS if c in table.column_names])


def add_lineage(table: pa.Table, lineage: dict, schema_name: str) -> pa.Table:
    """`table` (from :func:`clean_rows`) with the batch-constant columns, cast to the named schema."""
    schema = arrow_schema(schema_name)
    n = table.num_rows
    columns = []
    for name in schema.names:
        if name in BATCH_CONSTANTS:
            columns.append(constant(lineage[name], n, schema.field(name).type))
        else:
            columns.append(table[name])
    return pa.Table.from_arrays(columns, names=schema.names).cast(schema)


def clean_chunk(chunk: Chunk, lineage: dict, limits: Limits) -> tuple[pa.Table, pa.Table]:
    """Typed sales lines (schema 'sales_lines') and quarantined rows (schema 'quarantine')."""
    good, bad = clean_rows(chunk, limits)
    return add_lineage(good, lineage, "sales_lines"), add_lineage(bad, lineage, "quarantine")


def _details(reasons: pa.Array) -> pa.Array:
    keys = strings(list(QUARANTINE_REASONS))
    values = strings(list(QUARANTINE_REASONS.values()))
    return pc.take(values, pc.index_in(reasons, keys))
