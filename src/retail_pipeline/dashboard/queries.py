"""What the offline dashboard reads: marts only, through the analytics API (DuckDB or BigQuery alike).

The page filters by day range and country in the browser, so it needs data at a fine grain:
invoices (``mart_invoices``: one row per invoice, day, country and customer) and product × day ×
country net revenue (``mart_product_sales_daily``). Whole-data properties (RFM segments, ABC
classes, data-quality outcomes) come from their marts; the calendar from ``mart_revenue_daily``;
countries in ``mart_revenue_by_country``'s revenue order. The revenue definitions live in the
marts (dbt/macros/revenue.sql), not here: a line's bucket is never decided by the dashboard.

Money leaves as exact integers of ``10**-MONEY_SCALE`` pounds (amounts carry the unit price's
scale), so the browser sums integers and never rounds a float. The two big marts are read as Arrow
(``Analytics.read_mart_arrow``) and shaped column by column (``columns``): no Python object per
row, no Decimal (``mart_product_sales_daily`` has about 4 million rows at ten times the reference
data); the small marts are read as DataFrames.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from numbers import Integral
from typing import TYPE_CHECKING, Any, TypeAlias

import pyarrow.compute as pc

from ..schema import PRICE_SCALE
from . import columns

if TYPE_CHECKING:
    import numpy
    import pyarrow

    from ..analytics import Analytics

MONEY_SCALE = PRICE_SCALE
#: A column of the page: a numpy array of indexes or integers, or a list when it holds a null.
IntColumn: TypeAlias = "numpy.ndarray | list[int | None]"
#: The page's invoice order (and mart_invoices' key), then the invoice figures it shows.
INVOICE_ORDER = ("invoice_date", "invoice_no", "country", "customer_id")
INVOICE_FIGURES = ("is_order", "is_cancellation", "gross_sales", "net_revenue", "cancellations", "items_sold")

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


def money_text(value: Decimal) -> str:
    """An exact decimal as text with MONEY_SCALE places ('22075976.0600'); a finer amount is an error."""
    import pyarrow as pa

    units = columns.money_units(pa.array([value], pa.decimal128(38, MONEY_SCALE)), MONEY_SCALE)[0]
    assert units is not None
    whole, fraction = divmod(abs(units), 10**MONEY_SCALE)
    return f"{'-' if units < 0 else ''}{whole}.{fraction:0{MONEY_SCALE}d}"


def collect(analytics: Analytics) -> dict[str, Any]:
    """All the data the page embeds: JSON values, except that the columns of indexes and integers
    are 1-D numpy integer arrays (page_json writes them as JSON lists; a money column with a null
    is a list, the null None)."""
    read = analytics.read_mart
    day_dates = read("mart_revenue_daily", columns=["invoice_date"])["invoice_date"].tolist()
    countries = (
        read("mart_revenue_by_country", columns=["country", "revenue_rank"])
        .sort_values("revenue_rank")["country"]
        .tolist()
    )

    segments = read("mart_customer_rfm", columns=["customer_id", "segment"])
    customers = segments["customer_id"].tolist()
    segment_names = sorted(set(segments["segment"].tolist()))

    inv = analytics.read_mart_arrow("mart_invoices", columns=[*INVOICE_ORDER, *INVOICE_FIGURES])
    inv = inv.take(pc.sort_indices(inv, sort_keys=[(c, "ascending", "at_end") for c in INVOICE_ORDER]))
    # a customer with no order (only cancellations, say) has no RFM row: numbered after those that do
    customer_numbers, extra_customers = columns.numbered(inv["customer_id"], customers)
    invoice_numbers, distinct_invoices = columns.ranks(inv["invoice_no"])
    invoices: dict[str, IntColumn] = {
        "invoice": invoice_numbers,
        "day": columns.positions(inv["invoice_date"], day_dates, "invoice day"),
        "country": columns.positions(inv["country"], countries, "country"),
        "customer": customer_numbers,
        "gross": columns.money_units(inv["gross_sales"], MONEY_SCALE),
        "net": columns.money_units(inv["net_revenue"], MONEY_SCALE),
        "cancel": columns.money_units(inv["cancellations"], MONEY_SCALE),
        "items": columns.counts(inv["items_sold"]),
        "order": columns.flags(inv["is_order"]),
        "cancellation": columns.flags(inv["is_cancellation"]),
    }
    if distinct_invoices == len(inv):
        del invoices["invoice"]  # one row per invoice: the row number is the invoice (the page falls back to it)

    seg_index = {s: i for i, s in enumerate(segment_names)}
    customer_segment = [seg_index[s] for s in segments["segment"].tolist()] + [-1] * len(extra_customers)

    products = read(
        "mart_product_performance", columns=["stock_code", "description", "abc_class", "revenue_rank"]
    ).sort_values("revenue_rank", ignore_index=True)
    codes = products["stock_code"].tolist()
    product_days = _product_days(
        analytics.read_mart_arrow(
            "mart_product_sales_daily", columns=["invoice_date", "stock_code", "country", "net_revenue"]
        ),
        day_dates,
        codes,
        countries,
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
    frame: pyarrow.Table, day_dates: list[date], codes: list[str], countries: list[str]
) -> dict[str, numpy.ndarray]:
    """Net revenue per day, product and country as index columns, ordered by day, product, country;
    day_start[d] .. day_start[d + 1] are day d's rows, so the rows carry no day column."""
    import numpy as np

    day = columns.positions(frame["invoice_date"], day_dates, "invoice day")
    product = columns.positions(frame["stock_code"], codes, "product")
    country = columns.positions(frame["country"], countries, "country")
    net = np.asarray(columns.money_units(frame["net_revenue"], MONEY_SCALE), dtype=np.int64)
    order = columns.row_order((day, len(day_dates)), (product, len(codes)), (country, len(countries)))
    day_start = np.concatenate([[0], np.cumsum(np.bincount(day, minlength=len(day_dates)))])
    return {"day_start": day_start, "product": product[order], "country": country[order], "net": net[order]}


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
