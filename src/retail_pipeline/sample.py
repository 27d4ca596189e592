"""A deterministic generator of workbooks shaped like the UCI Online Retail data.

Same cell types as the real file (numeric InvoiceNo for plain invoices and text for 'C'/'A'
ones; numeric StockCode when all digits, text otherwise; numeric CustomerID or blank; Excel
date-times) and the same quirks (cancellations, bad-debt adjustments, stock adjustments with
lowercase notes, zero prices, postage and fee codes, trailing spaces, several descriptions per
code, exact duplicate rows, the 80,995 pair). The vocabulary is in sample_vocab.py,
the writing of xlsx (sample_xlsx.py) and CSV/Parquet (sample_files.py) apart from the rows.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from .sample_files import write_sheets
from .sample_vocab import (
    ADJECTIVES,
    COUNTRIES,
    HEADERS,
    NOTES,
    NOUNS,
    QUANTITIES,
    QUANTITY_WEIGHTS,
    SPECIALS,
)

__all__ = ["HEADERS", "generate", "write_sample"]


def generate(
    rows: int,
    seed: int = 0,
    start: datetime = datetime(2010, 12, 1, 8, 26),
    end: datetime = datetime(2011, 12, 9, 12, 50),
    first_invoice: int = 536365,
) -> dict[str, np.ndarray]:
    """Column arrays (object dtype: Python ints, floats, strings, datetimes or None) of `rows` lines."""
    rng = np.random.default_rng(seed)
    n_products = int(np.clip(rows // 20, 200, 4000))
    codes_num = rng.choice(np.arange(10002, 90000), size=n_products, replace=False)
    suffixed = rng.random(n_products) < 0.12
    suffix = rng.choice(list("ABCDEFGHKLNPS"), size=n_products)
    codes = np.array([f"{c}{s}" if x else int(c) for c, s, x in zip(codes_num, suffix, suffixed)], dtype=object)
    names = np.array(
        [
            f"{ADJECTIVES[a]} {NOUNS[b]}"
            for a, b in zip(rng.integers(0, len(ADJECTIVES), n_products), rng.integers(0, len(NOUNS), n_products))
        ],
        dtype=object,
    )
    names = np.array([n + (" " if t else "") for n, t in zip(names, rng.random(n_products) < 0.02)], dtype=object)
    alt_names = np.array(
        [f"{n.strip()} {ADJECTIVES[i]}" for n, i in zip(names, rng.integers(0, len(ADJECTIVES), n_products))],
        dtype=object,
    )
    prices = np.round(np.exp(rng.normal(0.9, 0.8, n_products)), 2).clip(0.06, 300)
    popularity = 1.0 / np.arange(1, n_products + 1) ** 0.5
    popularity /= popularity.sum()

    n_customers = int(np.clip(rows // 124, 10, 4372))
    customers = rng.choice(np.arange(12346, 18288), size=n_customers, replace=False)
    cust_country = np.where(
        rng.random(n_customers) < 0.9, "United Kingdom", rng.choice(np.array(COUNTRIES, dtype=object), size=n_customers)
    )

    # invoices: sizes, kinds and customers
    sizes = []
    while sum(sizes) < rows:
        sizes.extend((rng.geometric(1 / 21, size=max(16, rows // 200))).tolist())
    sizes = np.array(sizes)
    n_inv = int(np.searchsorted(np.cumsum(sizes), rows) + 1)
    sizes = sizes[:n_inv]
    sizes[-1] -= int(sizes.sum() - rows)
    kind = rng.choice(np.array(["sale", "cancel", "adjust"]), size=n_inv, p=[0.83, 0.16, 0.01])
    sizes = np.where(kind == "cancel", np.minimum(sizes, rng.integers(1, 4, n_inv)), sizes)
    sizes = np.where(kind == "adjust", 1, sizes)
    # re-fill to exactly `rows` lines with extra sale invoices
    missing = rows - int(sizes.sum())
    if missing > 0:
        extra = []
        while sum(extra) < missing:
            extra.append(int(rng.geometric(1 / 21)))
        extra[-1] -= sum(extra) - missing
        sizes = np.concatenate([sizes, extra])
        kind = np.concatenate([kind, np.full(len(extra), "sale")])
    order = rng.permutation(len(sizes))
    sizes, kind = sizes[order], kind[order]
    keep = sizes > 0
    sizes, kind = sizes[keep], kind[keep]
    n_inv = len(sizes)
    inv_customer = np.where(rng.random(n_inv) < 0.75, rng.choice(customers, size=n_inv), 0)
    inv_customer = np.where(kind == "adjust", 0, inv_customer)
    span = (end - start).total_seconds()
    inv_offsets = np.sort(rng.random(n_inv)) * span
    inv_offsets[0], inv_offsets[-1] = 0, span
    inv_times = [start + timedelta(minutes=int(o // 60)) for o in inv_offsets]
    inv_numbers = first_invoice + np.arange(n_inv)

    line_inv = np.repeat(np.arange(n_inv), sizes)
    n = len(line_inv)
    product = rng.choice(n_products, size=n, p=popularity)
    stock = codes[product]
    desc = np.where(rng.random(n) < 0.1, alt_names[product], names[product]).astype(object)
    price = prices[product].astype(object)
    qty = rng.choice(QUANTITIES, size=n, p=QUANTITY_WEIGHTS / QUANTITY_WEIGHTS.sum()).astype(object)
    lkind = kind[line_inv]

    # special stock codes on sale lines
    roll = rng.random(n)
    edge = 0.0
    for code, text, (lo, hi), share in SPECIALS:
        hit = (roll >= edge) & (roll < edge + share) & (lkind == "sale")
        edge += share
        idx = np.flatnonzero(hit)
        stock[idx] = code
        desc[idx] = text
        price[idx] = list(np.round(rng.uniform(lo, hi, len(idx)), 3 if code == "PADS" else 2))
        qty[idx] = 1
    zero = (rng.random(n) < 0.0045) & (lkind == "sale")
    price[zero] = 0.0

    # cancellations: negative quantity; stock adjustments: price 0, no customer, notes, negative or positive
    cancel = lkind == "cancel"
    qty[cancel] = -np.abs(qty[cancel].astype(np.int64))
    adjust = np.flatnonzero(lkind == "adjust")
    price[adjust] = 0.0
    qty[adjust] = -rng.integers(1, 200, len(adjust)) * np.where(rng.random(len(adjust)) < 0.85, 1, -1)
    desc[adjust] = rng.choice(np.array(NOTES, dtype=object), size=len(adjust))

    invoice = np.empty(n, dtype=object)
    numbers = inv_numbers[line_inv]
    invoice[:] = numbers.tolist()
    invoice[cancel] = [f"C{x}" for x in numbers[cancel]]
    when = np.array(inv_times, dtype=object)[line_inv]
    customer = inv_customer[line_inv].astype(object)
    customer[customer == 0] = None
    country = np.where(
        inv_customer[line_inv] == 0,
        "United Kingdom",
        cust_country[np.searchsorted(np.sort(customers), inv_customer[line_inv]).clip(0, n_customers - 1)],
    )
    sorted_idx = np.argsort(customers)
    pos = np.searchsorted(customers[sorted_idx], inv_customer[line_inv]).clip(0, n_customers - 1)
    country = np.where(inv_customer[line_inv] == 0, "United Kingdom", cust_country[sorted_idx][pos]).astype(object)
    # a few blank descriptions on product lines too
    desc[(rng.random(n) < 0.0005) & (lkind == "sale") & (price == 0.0)] = None

    cols = {
        "invoice": invoice,
        "stock": stock,
        "desc": desc,
        "qty": qty,
        "when": when,
        "price": price,
        "customer": customer,
        "country": country,
    }
    if rows >= 1000:
        _set_row(
            cols,
            n // 3,
            ["A563185", "B", "Adjust bad debt", 1, datetime(2011, 8, 12, 14, 50), 11062.06, None, "United Kingdom"],
        )
        _set_row(
            cols,
            n // 3 + 1,
            ["A563186", "B", "Adjust bad debt", 1, datetime(2011, 8, 12, 14, 51), -11062.06, None, "United Kingdom"],
        )
        _set_row(
            cols,
            n // 3 + 2,
            ["A563187", "B", "Adjust bad debt", 1, datetime(2011, 8, 12, 14, 52), -11062.06, None, "United Kingdom"],
        )
        _set_row(
            cols,
            n - 2,
            [
                581483,
                23843,
                "PAPER CRAFT , LITTLE BIRDIE",
                80995,
                datetime(2011, 12, 9, 9, 15),
                2.08,
                16446,
                "United Kingdom",
            ],
        )
        _set_row(
            cols,
            n - 1,
            [
                "C581484",
                23843,
                "PAPER CRAFT , LITTLE BIRDIE",
                -80995,
                datetime(2011, 12, 9, 9, 27),
                2.08,
                16446,
                "United Kingdom",
            ],
        )
    # exact duplicates: ~1% of lines repeat the line before them
    dup = np.flatnonzero(rng.random(n) < 0.0097)
    dup = dup[(dup > 0) & (dup < n - 2)]
    for key in cols:
        cols[key][dup] = cols[key][dup - 1]
    return cols


def _set_row(cols: dict, i: int, values: list) -> None:
    for key, value in zip(cols, values):
        cols[key][i] = value


def write_sample(
    out: Path, rows: int = 20_000, variant: str = "online-retail", seed: int = 0, fmt: str | None = None
) -> dict:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fmt = fmt or ("csv.gz" if out.name.endswith(".csv.gz") else out.suffix.lstrip(".").lower() or "xlsx")
    headers = HEADERS[variant]
    if variant == "online-retail-ii":
        first = rows // 2
        sheets = [
            (
                "Year 2009-2010",
                generate(first, seed, datetime(2009, 12, 1, 7, 45), datetime(2010, 12, 9, 20, 1), 489434),
            ),
            ("Year 2010-2011", generate(rows - first, seed + 1)),
        ]
    else:
        sheets = [("Online Retail", generate(rows, seed))]
    write_sheets(out, fmt, headers, sheets)
    return {"rows": rows, "sheets": len(sheets)}
