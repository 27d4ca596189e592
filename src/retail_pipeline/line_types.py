"""Every kept line gets a line_type (schema.LINE_TYPES): what kind of line the invoice row is.

By precedence: an 'A' invoice is a bad-debt adjustment, a 'C' invoice a cancellation; then the
stock code tells postage, fees, discounts and other non-product lines; then a negative quantity
(or a zero price without a customer) is a stock adjustment, a zero price a free item; the rest
are sales.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .arrow_util import bools, from_numpy, lit, strings
from .cell_typing import zero

POSTAGE = ["POST", "DOT", "C2"]
FEES = ["BANK CHARGES", "AMAZONFEE", "CRUK"]
DISCOUNT = ["D"]
NON_PRODUCT = ["M", "m", "S", "PADS", "B"]
NON_PRODUCT_PREFIXES = ["gift_0001", "DCGS"]
LABELS = [
    "bad_debt_adjustment",
    "cancellation",
    "postage",
    "fee",
    "discount",
    "non_product",
    "stock_adjustment",
    "free_item",
]
_NAMES = strings([*LABELS, "sale"])
_SETS = {
    name: strings(values)
    for name, values in {"postage": POSTAGE, "fees": FEES, "discount": DISCOUNT, "non_product": NON_PRODUCT}.items()
}


def _starts_with_any(arr: pa.Array, prefixes: list[str]) -> pa.Array:
    out = None
    for prefix in prefixes:
        m = pc.starts_with(arr, prefix)
        out = m if out is None else pc.or_(out, m)
    return out


def classify(
    invoice_no: pa.Array, stock_code: pa.Array, quantity: pa.Array, unit_price: pa.Array, customer_id: pa.Array
) -> pa.Array:
    """line_type of each row (see the module doc for the precedence)."""
    inv = pc.fill_null(invoice_no, lit(""))
    code = pc.fill_null(stock_code, lit(""))
    price_zero = pc.equal(unit_price, zero(unit_price.type))
    conditions = [
        pc.starts_with(inv, "A"),
        pc.starts_with(inv, "C"),
        pc.is_in(code, _SETS["postage"]),
        pc.is_in(code, _SETS["fees"]),
        pc.is_in(code, _SETS["discount"]),
        pc.or_(pc.is_in(code, _SETS["non_product"]), _starts_with_any(code, NON_PRODUCT_PREFIXES)),
        pc.or_(pc.less(quantity, zero(quantity.type)), pc.and_(price_zero, pc.is_null(customer_id))),
        price_zero,
    ]
    # the index of the first condition that holds (len(LABELS): none, a sale), as codes into _NAMES
    first = np.full(len(inv), len(LABELS), dtype=np.int8)
    for i in reversed(range(len(conditions))):
        first[bools(conditions[i])] = i
    return pc.take(_NAMES, from_numpy(first))
