"""What the offline dashboard reads: marts only, through the analytics API (DuckDB or BigQuery alike).

The page filters by day range and country in the browser, so it needs data at a fine grain:
invoices (``mart_invoices``: one row per invoice, day, country and customer) and product × day ×
country net revenue (``mart_product_sales_daily``). Whole-data properties (RFM segments, ABC
classes, data-quality outcomes) come from their marts; the calendar from ``mart_revenue_daily``;
countries in ``mart_revenue_by_country``'s revenue order. The revenue definitions live in the
marts (dbt/macros/revenue.sql), not here: a line's bucket is never decided by the dashboard.

Money leaves as exact integers of ``10**-MONEY_SCALE`` pounds (amounts carry the unit price's
scale), so the browser sums integers and never rounds a float.
"""

from __future__ import annotations

from decimal import Decimal
from numbers import Integral
from typing import TYPE_CHECKING, Any, Iterable

from ..schema import PRICE_SCALE

if TYPE_CHECKING:
    import pandas

    from ..analytics import Analytics

MONEY_SCALE = PRICE_SCALE

#: The marts the page reads (building fails with a clear message if one is missing).
REQUIRED_MARTS = ("mart_revenue_daily", "mart_revenue_by_country", "mart_invoices", "mart_product_sales_daily",
                  "mart_product_performance", "mart_customer_rfm", "mart_data_quality", "mart_revenue_monthly")


def money_units(values: Iterable[Decimal]) -> list[int]:
    """Exact decimal amounts as integers of 10**-MONEY_SCALE pounds; a finer amount is an error."""
    out = []
    for value in values:
        units = Decimal(value).scaleb(MONEY_SCALE)
        if units != units.to_integral_value():
            raise ValueError(f"{value} has more than {MONEY_SCALE} decimal places")
        out.append(int(units))
    return out


def money_text(value: Decimal) -> str:
    """An exact decimal as text with MONEY_SCALE places ('22075976.0600')."""
    units = money_units([value])[0]
    whole, fraction = divmod(abs(units), 10 ** MONEY_SCALE)
    return f"{'-' if units < 0 else ''}{whole}.{fraction:0{MONEY_SCALE}d}"


def _ints(series: "pandas.Series") -> list[int]:
    return [int(v) for v in series.fillna(0)]


def _flags(series: "pandas.Series") -> list[int]:
    return [int(bool(v)) for v in series.fillna(False)]


def collect(analytics: "Analytics") -> dict[str, Any]:
    """All the data the page embeds, as plain JSON-ready values (columnar lists of indexes and integers)."""
    import pandas as pd

    read = analytics.read_mart
    days = [d.isoformat() for d in read("mart_revenue_daily", columns=["invoice_date"])["invoice_date"]]
    day_index = {d: i for i, d in enumerate(days)}
    countries = list(read("mart_revenue_by_country", columns=["country", "revenue_rank"])
                     .sort_values("revenue_rank")["country"])
    country_index = {c: i for i, c in enumerate(countries)}

    segments = read("mart_customer_rfm", columns=["customer_id", "segment"])
    customers = list(segments["customer_id"])
    segment_names = sorted(set(segments["segment"]))
    customer_index = {c: i for i, c in enumerate(customers)}

    inv = read("mart_invoices", columns=["invoice_no", "invoice_date", "country", "customer_id", "is_order",
                                         "is_cancellation", "gross_sales", "net_revenue", "cancellations",
                                         "items_sold"])
    inv = inv.sort_values(["invoice_date", "invoice_no", "country", "customer_id"], kind="stable",
                          na_position="last", ignore_index=True)
    extra_customers: list[str] = []
    customer_numbers = []
    for customer in inv["customer_id"]:
        if pd.isna(customer):
            customer_numbers.append(-1)
            continue
        if customer not in customer_index:  # a customer with no order (only cancellations, say) has no RFM row
            customer_index[customer] = len(customers) + len(extra_customers)
            extra_customers.append(customer)
        customer_numbers.append(customer_index[customer])
    numbers = {no: i for i, no in enumerate(sorted(set(inv["invoice_no"])))}
    invoices: dict[str, list[int]] = {
        "invoice": [numbers[no] for no in inv["invoice_no"]],
        "day": [day_index[d.isoformat()] for d in inv["invoice_date"]],
        "country": [country_index[c] for c in inv["country"]],
        "customer": customer_numbers,
        "gross": money_units(inv["gross_sales"]),
        "net": money_units(inv["net_revenue"]),
        "cancel": money_units(inv["cancellations"]),
        "items": _ints(inv["items_sold"]),
        "order": _flags(inv["is_order"]),
        "cancellation": _flags(inv["is_cancellation"]),
    }
    if len(numbers) == len(inv):
        del invoices["invoice"]  # one row per invoice: the row number is the invoice (the page falls back to it)

    seg_index = {s: i for i, s in enumerate(segment_names)}
    customer_segment = [seg_index[s] for s in segments["segment"]] + [-1] * len(extra_customers)

    products = read("mart_product_performance", columns=["stock_code", "description", "abc_class", "revenue_rank"]) \
        .sort_values("revenue_rank", ignore_index=True)
    product_index = {code: i for i, code in enumerate(products["stock_code"])}
    product_days = _product_days(read("mart_product_sales_daily",
                                      columns=["invoice_date", "country", "stock_code", "net_revenue"]),
                                 day_index, product_index, country_index, len(days))

    quality_cols = ["batch_id", "source_uri", "state", "ingested_at", "outcome", "reason", "row_count", "rows_read",
                    "rows_loaded", "rows_quarantined", "rows_duplicate"]
    quality = read("mart_data_quality", columns=quality_cols).sort_values(
        ["ingested_at", "batch_id", "outcome", "reason"], kind="stable", ignore_index=True)
    monthly = read("mart_revenue_monthly", columns=["net_revenue", "orders", "gross_sales", "cancellations"])
    has_months = len(monthly) > 0

    return {
        "money_scale": MONEY_SCALE,
        "days": days,
        "countries": countries,
        "segments": segment_names,
        "customer_segment": customer_segment,
        "invoices": invoices,
        "products": {"code": list(products["stock_code"]),
                     "name": [d if isinstance(d, str) else c for c, d in zip(products["stock_code"],
                                                                             products["description"])],
                     "abc": list(products["abc_class"])},
        "product_days": product_days,
        "quality": [_quality_row(row) for row in quality.to_dict("records")],
        "mart_totals": {
            "net_revenue": money_text(sum(monthly["net_revenue"], Decimal(0))) if has_months else None,
            "orders": int(monthly["orders"].sum()) if has_months else None,
            "gross_sales": money_text(sum(monthly["gross_sales"], Decimal(0))) if has_months else None,
            "cancellations": money_text(sum(monthly["cancellations"], Decimal(0))) if has_months else None,
        },
    }


def _product_days(frame: "pandas.DataFrame", day_index: dict[str, int], product_index: dict[str, int],
                  country_index: dict[str, int], n_days: int) -> dict[str, list[int]]:
    """Net revenue per day, product and country as index columns, ordered by day; day_start[d] ..
    day_start[d + 1] are day d's rows, so the rows carry no day column (about 300,000 rows on the
    full data set: the largest slice of the page)."""
    rows = sorted(zip((day_index[d.isoformat()] for d in frame["invoice_date"]),
                      (product_index[s] for s in frame["stock_code"]),
                      (country_index[c] for c in frame["country"]),
                      money_units(frame["net_revenue"])))
    day_start = [0] * (n_days + 1)
    for day, _, _, _ in rows:
        day_start[day + 1] += 1
    for d in range(n_days):
        day_start[d + 1] += day_start[d]
    return {"day_start": day_start, "product": [r[1] for r in rows], "country": [r[2] for r in rows],
            "net": [r[3] for r in rows]}


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
