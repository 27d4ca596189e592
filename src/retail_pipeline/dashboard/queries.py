"""What the offline dashboard reads: marts only, through the analytics API (DuckDB or BigQuery alike).

The page filters by day range and country in the browser, so it needs data at a fine grain:
invoices (``mart_invoices``: one row per invoice, day, country and customer) and product × day ×
country net revenue (``mart_product_sales_daily``). Whole-data properties (RFM segments, ABC
classes, data-quality outcomes) come from their marts; the calendar from ``mart_revenue_daily``;
countries in ``mart_revenue_by_country``'s revenue order. The revenue definitions live in the
marts (dbt/macros/revenue.sql), not here: a line's bucket is never decided by the dashboard.

Money leaves as exact integers of ``10**-MONEY_SCALE`` pounds (amounts carry the unit price's
scale), so the browser sums integers and never rounds a float. The marts are read as Arrow
(``Analytics.read_mart_arrow``) and the two big ones shaped column by column (``columns``): no
Python object per row, no Decimal and no pandas (``mart_product_sales_daily`` has about 4 million
rows at ten times the reference data).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
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
INVOICE_ORDER = ["invoice_date", "invoice_no", "country", "customer_id"]
INVOICE_FIGURES = ["is_order", "is_cancellation", "gross_sales", "net_revenue", "cancellations", "items_sold"]
#: The data-quality columns the page shows.
QUALITY_COLUMNS = [
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


def money_text(units: int) -> str:
    """Integer money units as text with MONEY_SCALE places (220759760600 → '22075976.0600')."""
    whole, fraction = divmod(abs(units), 10**MONEY_SCALE)
    return f"{'-' if units < 0 else ''}{whole}.{fraction:0{MONEY_SCALE}d}"


def collect(analytics: Analytics) -> dict[str, Any]:
    """All the data the page embeds: JSON values, except that the columns of indexes and integers
    are 1-D numpy integer arrays (page_json writes them as JSON lists; a money column with a null
    is a list, the null None)."""
    days = _sorted(analytics, "mart_revenue_daily", ["invoice_date"], ["invoice_date"])["invoice_date"]
    # revenue_rank is a row_number (no ties); the name after it only makes the order total
    ranked = _sorted(analytics, "mart_revenue_by_country", ["country", "revenue_rank"], ["revenue_rank", "country"])
    countries = ranked["country"]

    segments = _sorted(analytics, "mart_customer_rfm", ["customer_id", "segment"], ["customer_id"])
    customers = segments["customer_id"]
    segment_of = segments["segment"].to_pylist()
    segment_names = sorted(set(segment_of))

    inv = _sorted(analytics, "mart_invoices", [*INVOICE_ORDER, *INVOICE_FIGURES], INVOICE_ORDER)
    # a customer with no order (only cancellations, say) has no RFM row: numbered after those that do
    customer_numbers, extra_customers = columns.numbered(inv["customer_id"], customers)
    invoice_numbers, distinct_invoices = columns.ranks(inv["invoice_no"])
    invoices: dict[str, IntColumn] = {
        "invoice": invoice_numbers,
        "day": columns.positions(inv["invoice_date"], days, "invoice day"),
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
    customer_segment = [seg_index[s] for s in segment_of] + [-1] * extra_customers

    products = _sorted(
        analytics,
        "mart_product_performance",
        ["stock_code", "description", "abc_class", "revenue_rank"],
        ["revenue_rank", "stock_code"],
    )
    codes = products["stock_code"].to_pylist()
    product_days = _product_days(
        analytics.read_mart_arrow(
            "mart_product_sales_daily", columns=["invoice_date", "stock_code", "country", "net_revenue"]
        ),
        days,
        products["stock_code"],
        countries,
    )

    quality = _sorted(analytics, "mart_data_quality", QUALITY_COLUMNS, ["ingested_at", "batch_id", "outcome", "reason"])
    monthly = analytics.read_mart_arrow(
        "mart_revenue_monthly", columns=["net_revenue", "orders", "gross_sales", "cancellations"]
    )
    has_months = monthly.num_rows > 0

    def money_total(column: str) -> str | None:
        if not has_months:
            return None
        units = columns.money_units(monthly[column], MONEY_SCALE)
        if isinstance(units, list):
            raise ValueError(f"mart_revenue_monthly has a month without {column}: rebuild the marts (dbt)")
        return money_text(sum(units.tolist()))

    return {
        "money_scale": MONEY_SCALE,
        "days": [d.isoformat() for d in days.to_pylist()],
        "countries": countries.to_pylist(),
        "segments": segment_names,
        "customer_segment": customer_segment,
        "invoices": invoices,
        "products": {
            "code": codes,
            "name": [d if isinstance(d, str) else c for c, d in zip(codes, products["description"].to_pylist())],
            "abc": products["abc_class"].to_pylist(),
        },
        "product_days": product_days,
        "quality": _quality_rows(quality),
        "mart_totals": {
            "net_revenue": money_total("net_revenue"),
            "orders": int(pc.sum(monthly["orders"], min_count=0).as_py()) if has_months else None,
            "gross_sales": money_total("gross_sales"),
            "cancellations": money_total("cancellations"),
        },
    }


def _sorted(analytics: Analytics, name: str, wanted: list[str], order: list[str]) -> pyarrow.Table:
    """Some columns of a mart, sorted by ``order`` (stable, nulls last: as the DataFrame reads were)."""
    table = analytics.read_mart_arrow(name, columns=wanted)
    return table.take(pc.sort_indices(table, sort_keys=[(c, "ascending", "at_end") for c in order]))


def _product_days(
    frame: pyarrow.Table, days: pyarrow.ChunkedArray, codes: pyarrow.ChunkedArray, countries: pyarrow.ChunkedArray
) -> dict[str, numpy.ndarray]:
    """Net revenue per day, product and country as index columns, ordered by day, product, country;
    day_start[d] .. day_start[d + 1] are day d's rows, so the rows carry no day column."""
    import numpy as np

    day = columns.positions(frame["invoice_date"], days, "invoice day")
    product = columns.positions(frame["stock_code"], codes, "product")
    country = columns.positions(frame["country"], countries, "country")
    net = np.asarray(columns.money_units(frame["net_revenue"], MONEY_SCALE), dtype=np.int64)
    order = columns.row_order((day, len(days)), (product, len(codes)), (country, len(countries)))
    day_start = np.concatenate([[0], np.cumsum(np.bincount(day, minlength=len(days)))])
    return {"day_start": day_start, "product": product[order], "country": country[order], "net": net[order]}


def _quality_rows(table: pyarrow.Table) -> list[dict]:
    """The data-quality rows as JSON values, ``ingested_at`` as ISO text in UTC."""
    values = {name: table[name].to_pylist() for name in table.column_names if name != "ingested_at"}
    values["ingested_at"] = _iso_times(table["ingested_at"])
    return [_quality_row({name: values[name][i] for name in table.column_names}) for i in range(table.num_rows)]


def _iso_times(column: pyarrow.ChunkedArray) -> list[str | None]:
    """Timestamps as ``datetime.isoformat(sep=" ")`` gives them ('2011-12-10 10:00:00+00:00'), a zone's
    in UTC, read as integers: pyarrow's own datetimes would import pandas (0.4 s)."""
    import pyarrow as pa

    zone = column.type.tz
    micros = column.cast(pa.timestamp("us", tz=zone)).cast(pa.int64()).to_pylist()
    epoch = datetime(1970, 1, 1, tzinfo=UTC if zone is not None else None)
    return [None if m is None else (epoch + timedelta(microseconds=m)).isoformat(sep=" ") for m in micros]


def _quality_row(row: dict) -> dict:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if value is None or key == "ingested_at":
            out[key] = value
        elif isinstance(value, Integral):
            out[key] = int(value)
        else:
            out[key] = str(value)
    return out
