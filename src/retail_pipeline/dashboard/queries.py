"""What the offline dashboard reads: marts only, through the analytics API (DuckDB or BigQuery alike).

The page filters by day range and country in the browser, so it needs data at a fine grain:
invoices (``mart_invoices``: one row per invoice, day, country and customer) and product × day ×
country net revenue (``mart_product_sales_daily``). Whole-data properties (RFM segments, ABC
classes, data-quality outcomes) come from their marts; the calendar from ``mart_revenue_daily``;
countries in ``mart_revenue_by_country``'s revenue order. The revenue definitions live in the
marts (dbt/macros/revenue.sql), not here: a line's bucket is never decided by the dashboard.

Money leaves as exact integers of ``10**-MONEY_SCALE`` pounds (amounts carry the unit price's
scale), so the browser sums integers and never rounds a float. The shaping is vectorised (the
product slice is about 300,000 rows on the full data set).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from numbers import Integral
from typing import TYPE_CHECKING, Any

from ..schema import PRICE_SCALE

if TYPE_CHECKING:
    import pandas

    from ..analytics import Analytics

MONEY_SCALE = PRICE_SCALE

#: The marts the page reads (building fails with a clear message if one is missing).
REQUIRED_MARTS = (
    "mart_revenue_daily",
    "mart_revenue_by_country",
    "mart_invoices",
    "mart_product_sales_daily",
    "mart_product_performance",
    "mart_customer_rfm",
    "mart_data_quality",
    "mart_revenue_monthly",
)


def money_units(values: Iterable[Decimal]) -> list[int]:
    """Exact decimal amounts as integers of 10**-MONEY_SCALE pounds; a finer amount is an error
    (Arrow refuses to rescale it with loss)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    amounts = pa.array(list(values), pa.decimal128(38 - MONEY_SCALE - 2, MONEY_SCALE))
    scaled = pc.multiply(amounts, pa.scalar(Decimal(10**MONEY_SCALE), pa.decimal128(MONEY_SCALE + 1, 0)))
    return pc.cast(scaled, pa.int64()).to_pylist()


def money_text(value: Decimal) -> str:
    """An exact decimal as text with MONEY_SCALE places ('22075976.0600')."""
    units = money_units([value])[0]
    whole, fraction = divmod(abs(units), 10**MONEY_SCALE)
    return f"{'-' if units < 0 else ''}{whole}.{fraction:0{MONEY_SCALE}d}"


def _numbers(series: pandas.Series, lookup: dict, what: str) -> list[int]:
    """Each value's number in ``lookup``; a value the lookup lacks means the marts disagree."""
    values = series.tolist()
    try:
        return [lookup[v] for v in values]
    except KeyError as exc:
        raise ValueError(f"{what} {exc.args[0]!r} is in one mart but not in another: rebuild the marts (dbt)") from exc


def _flags(series: pandas.Series) -> list[int]:
    return series.fillna(False).astype(bool).astype(int).tolist()


def collect(analytics: Analytics) -> dict[str, Any]:
    """All the data the page embeds, as plain JSON-ready values (columnar lists of indexes and integers)."""
    read = analytics.read_mart
    day_dates = read("mart_revenue_daily", columns=["invoice_date"])["invoice_date"].tolist()
    day_index = {d: i for i, d in enumerate(day_dates)}
    countries = (
        read("mart_revenue_by_country", columns=["country", "revenue_rank"])
        .sort_values("revenue_rank")["country"]
        .tolist()
    )
    country_index = {c: i for i, c in enumerate(countries)}

    segments = read("mart_customer_rfm", columns=["customer_id", "segment"])
    customers = segments["customer_id"].tolist()
    segment_names = sorted(set(segments["segment"].tolist()))
    customer_index = {c: i for i, c in enumerate(customers)}

    inv = read(
        "mart_invoices",
        columns=[
            "invoice_no",
            "invoice_date",
            "country",
            "customer_id",
            "is_order",
            "is_cancellation",
            "gross_sales",
            "net_revenue",
            "cancellations",
            "items_sold",
        ],
    )
    inv = inv.sort_values(
        ["invoice_date", "invoice_no", "country", "customer_id"], kind="stable", na_position="last", ignore_index=True
    )
    # a customer with no order (only cancellations, say) has no RFM row: numbered after those that do
    known = inv["customer_id"].dropna()
    extra_customers = list(dict.fromkeys(c for c in known.tolist() if c not in customer_index))
    customer_index.update({c: len(customers) + i for i, c in enumerate(extra_customers)})
    customer_numbers = [
        customer_index[c] if known else -1
        for c, known in zip(inv["customer_id"].tolist(), inv["customer_id"].notna().tolist())
    ]
    invoice_numbers = {no: i for i, no in enumerate(sorted(set(inv["invoice_no"].tolist())))}
    invoices: dict[str, list[int]] = {
        "invoice": [invoice_numbers[no] for no in inv["invoice_no"].tolist()],
        "day": _numbers(inv["invoice_date"], day_index, "invoice day"),
        "country": _numbers(inv["country"], country_index, "country"),
        "customer": customer_numbers,
        "gross": money_units(inv["gross_sales"]),
        "net": money_units(inv["net_revenue"]),
        "cancel": money_units(inv["cancellations"]),
        "items": inv["items_sold"].fillna(0).astype("int64").tolist(),
        "order": _flags(inv["is_order"]),
        "cancellation": _flags(inv["is_cancellation"]),
    }
    if len(invoice_numbers) == len(inv):
        del invoices["invoice"]  # one row per invoice: the row number is the invoice (the page falls back to it)

    seg_index = {s: i for i, s in enumerate(segment_names)}
    customer_segment = [seg_index[s] for s in segments["segment"].tolist()] + [-1] * len(extra_customers)

    products = read(
        "mart_product_performance", columns=["stock_code", "description", "abc_class", "revenue_rank"]
    ).sort_values("revenue_rank", ignore_index=True)
    codes = products["stock_code"].tolist()
    product_days = _product_days(
        read("mart_product_sales_daily", columns=["invoice_date", "country", "stock_code", "net_revenue"]),
        day_index,
        {c: i for i, c in enumerate(codes)},
        country_index,
    )

    quality_cols = [
        "batch_id",
        "source_uri",
        "state",
        "ingested_at",
        "outcome",
        "reason",
        "row_count",
        "rows_read",
        "rows_loaded",
        "rows_quarantined",
        "rows_duplicate",
    ]
    quality = read("mart_data_quality", columns=quality_cols).sort_values(
        ["ingested_at", "batch_id", "outcome", "reason"], kind="stable", ignore_index=True
    )
    monthly = read("mart_revenue_monthly", columns=["net_revenue", "orders", "gross_sales", "cancellations"])
    has_months = len(monthly) > 0

    return {
        "money_scale": MONEY_SCALE,
        "days": [d.isoformat() for d in day_dates],
        "countries": countries,
        "segments": segment_names,
        "customer_segment": customer_segment,
        "invoices": invoices,
        "products": {
            "code": codes,
            "name": [d if isinstance(d, str) else c for c, d in zip(codes, products["description"].tolist())],
            "abc": products["abc_class"].tolist(),
        },
        "product_days": product_days,
        "quality": [_quality_row(row) for row in quality.to_dict("records")],
        "mart_totals": {
            "net_revenue": money_text(sum(monthly["net_revenue"], Decimal(0))) if has_months else None,
            "orders": int(monthly["orders"].sum()) if has_months else None,
            "gross_sales": money_text(sum(monthly["gross_sales"], Decimal(0))) if has_months else None,
            "cancellations": money_text(sum(monthly["cancellations"], Decimal(0))) if has_months else None,
        },
    }


def _product_days(
    frame: pandas.DataFrame, day_index: dict, product_index: dict[str, int], country_index: dict[str, int]
) -> dict[str, list[int]]:
    """Net revenue per day, product and country as index columns, ordered by day, product, country;
    day_start[d] .. day_start[d + 1] are day d's rows, so the rows carry no day column."""
    import numpy as np

    day = np.array(_numbers(frame["invoice_date"], day_index, "invoice day"), dtype=np.int64)
    product = np.array(_numbers(frame["stock_code"], product_index, "product"), dtype=np.int64)
    country = np.array(_numbers(frame["country"], country_index, "country"), dtype=np.int64)
    net = np.array(money_units(frame["net_revenue"]), dtype=np.int64)
    order = np.lexsort((country, product, day))
    day_start = np.concatenate([[0], np.cumsum(np.bincount(day, minlength=len(day_index)))])
    return {
        "day_start": day_start.tolist(),
        "product": product[order].tolist(),
        "country": country[order].tolist(),
        "net": net[order].tolist(),
    }


def _quality_row(row: dict) -> dict:
    import pandas as pd

    out: dict[str, Any] = {}
    for key, value in row.items():
        if pd.isna(value):
            out[key] = None
        elif key == "ingested_at":
            out[key] = value.isoformat(sep=" ")
        elif isinstance(value, Integral):
            out[key] = int(value)
        else:
            out[key] = str(value)
    return out
