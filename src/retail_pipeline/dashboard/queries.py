"""Every SQL statement of the offline dashboard, in one place.

The page filters by day range and country in the browser, so it needs data at a fine grain:
invoices (day × country × customer) and product × day × country lines, computed here from the
fact ``analytics.fct_sales_lines``. Names and shares that are properties of the whole data set
(RFM segments, ABC classes, data-quality outcomes) come straight from the marts.

Definitions agree with the marts (dbt/macros/revenue.sql, the ``revenue_definitions`` docs block):
a line's revenue bucket comes from its line type (:data:`REVENUE_BUCKETS`); net revenue is the sum
over :data:`NET_REVENUE_BUCKETS`; an order is an invoice with at least one gross-sales line; a
customer counts when they have an order; average order value = gross sales / orders;
cancellation rate = -cancellations / gross sales. Money leaves DuckDB as exact integers of
``10**-MONEY_SCALE`` pounds (amount = quantity × unit price keeps the price's scale), so the
browser sums integers and never rounds a float.
"""

from __future__ import annotations

from typing import Any

import duckdb

from ..schema import PRICE_SCALE

SCHEMA = "analytics"
MONEY_SCALE = PRICE_SCALE

#: line_type → revenue bucket, as in dbt/macros/revenue.sql (a test keeps the two identical).
REVENUE_BUCKETS = {
    "sale": "gross_sales",
    "free_item": "gross_sales",
    "postage": "shipping",
    "cancellation": "cancellations",
    "discount": "adjustments",
    "non_product": "adjustments",
    "fee": "excluded",
    "bad_debt_adjustment": "excluded",
    "stock_adjustment": "excluded",
}
NET_REVENUE_BUCKETS = ("gross_sales", "shipping", "cancellations", "adjustments")

#: The marts and the fact the dashboard reads; building fails with a clear message if one is missing.
REQUIRED_TABLES = ("fct_sales_lines", "mart_revenue_monthly", "mart_product_performance", "mart_customer_rfm",
                   "mart_data_quality")


def _bucket_case(column: str = "line_type") -> str:
    whens = " ".join(f"when '{t}' then '{b}'" for t, b in REVENUE_BUCKETS.items())
    return f"case {column} {whens} end"


def _units(expression: str) -> str:
    """An exact decimal amount as an integer count of 10**-MONEY_SCALE pounds."""
    return f"cast(({expression}) * {10 ** MONEY_SCALE} as bigint)"


_NET = "revenue_bucket in (" + ", ".join(f"'{b}'" for b in NET_REVENUE_BUCKETS) + ")"

LINES = f"""
    select *, {_bucket_case()} as revenue_bucket
    from {SCHEMA}.fct_sales_lines
"""

#: Distinct invoice days, oldest first, numbered from 0 (the page refers to a day by its number).
DAY_INDEX = f"""
    select invoice_date, cast(row_number() over (order by invoice_date) - 1 as integer) as day_index
    from (select distinct invoice_date from {SCHEMA}.fct_sales_lines)
"""
DAYS = f"select invoice_date from ({DAY_INDEX}) order by day_index"

#: Countries by net revenue, largest first, numbered from 0 ('Unknown' for a blank country, as in the marts).
COUNTRY_INDEX = f"""
    select country, cast(row_number() over (order by net desc, country) - 1 as integer) as country_index
    from (
        select coalesce(country, 'Unknown') as country, sum(case when {_NET} then amount else 0 end) as net
        from ({LINES}) as lines
        group by 1
    )
"""
COUNTRIES = f"select country from ({COUNTRY_INDEX}) order by country_index"

#: One row per invoice (per day, country and customer, should an invoice span several).
INVOICES = f"""
    with lines as ({LINES})
    select
        dense_rank() over (order by invoice_no) - 1 as invoice,
        invoice_date,
        coalesce(country, 'Unknown') as country,
        customer_id,
        {_units("sum(case when revenue_bucket = 'gross_sales' then amount else 0 end)")} as gross,
        {_units(f"sum(case when {_NET} then amount else 0 end)")} as net,
        {_units("sum(case when revenue_bucket = 'cancellations' then amount else 0 end)")} as cancel,
        cast(sum(case when revenue_bucket = 'gross_sales' then quantity else 0 end) as bigint) as items,
        bool_or(revenue_bucket = 'gross_sales') as is_order,
        bool_or(revenue_bucket = 'cancellations') as is_cancellation
    from lines
    group by invoice_no, invoice_date, coalesce(country, 'Unknown'), customer_id
    order by invoice_date, invoice_no
"""

#: Products of mart_product_performance (ABC class, overall rank).
PRODUCTS = f"""
    select stock_code, coalesce(description, stock_code) as description, abc_class, revenue_rank
    from {SCHEMA}.mart_product_performance
    order by revenue_rank
"""

#: Net revenue per day, product and country as numbers (products numbered as PRODUCTS lists them).
PRODUCT_DAYS = f"""
    with lines as ({LINES}),
    day_index as ({DAY_INDEX}),
    country_index as ({COUNTRY_INDEX}),
    product_index as (
        select stock_code, cast(row_number() over (order by revenue_rank) - 1 as integer) as product_index
        from {SCHEMA}.mart_product_performance
    )
    select
        day_index.day_index as day,
        product_index.product_index as product,
        country_index.country_index as country,
        {_units(f"sum(case when {_NET} then amount else 0 end)")} as net
    from lines
    inner join product_index on product_index.stock_code = lines.stock_code
    inner join day_index on day_index.invoice_date = lines.invoice_date
    inner join country_index on country_index.country = coalesce(lines.country, 'Unknown')
    where {_NET}
    group by 1, 2, 3
    order by 1, 2, 3
"""

#: Each buyer's RFM segment (mart_customer_rfm, scored as of the end of the data).
CUSTOMER_SEGMENTS = f"""
    select customer_id, segment
    from {SCHEMA}.mart_customer_rfm
    order by customer_id
"""

#: Where every source row went, per batch and outcome (mart_data_quality).
DATA_QUALITY = f"""
    select batch_id, source_uri, state, cast(ingested_at as varchar) as ingested_at, outcome, reason,
           row_count, rows_read, rows_loaded, rows_quarantined, rows_duplicate
    from {SCHEMA}.mart_data_quality
    order by ingested_at, batch_id, outcome, reason
"""

#: The headline figures of the whole data set, straight from the monthly mart (shown as a cross-check).
MART_TOTALS = f"""
    select
        cast(sum(net_revenue) as varchar) as net_revenue,
        sum(orders) as orders,
        cast(sum(gross_sales) as varchar) as gross_sales,
        cast(sum(cancellations) as varchar) as cancellations
    from {SCHEMA}.mart_revenue_monthly
"""


def missing_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The required fact and marts that are not in the warehouse (empty when all are there)."""
    present = {r[0] for r in con.execute(
        "select table_name from information_schema.tables where table_schema = ?", [SCHEMA]).fetchall()}
    return [t for t in REQUIRED_TABLES if t not in present]


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def collect(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """All the data the page embeds, as plain JSON-ready values (columnar lists of indexes and integers)."""
    days = [d.isoformat() for (d,) in _rows(con, DAYS)]
    day_index = {d: i for i, d in enumerate(days)}
    countries = [c for (c,) in _rows(con, COUNTRIES)]
    country_index = {c: i for i, c in enumerate(countries)}

    segment_rows = _rows(con, CUSTOMER_SEGMENTS)
    customers = [c for c, _ in segment_rows]
    segment_names = sorted({s for _, s in segment_rows})
    customer_index = {c: i for i, c in enumerate(customers)}

    invoices: dict[str, list[int]] = {k: [] for k in (
        "invoice", "day", "country", "customer", "gross", "net", "cancel", "items", "order", "cancellation")}
    extra_customers: list[str] = []
    for (invoice, day, country, customer, gross, net, cancel, items, is_order, is_cancellation) in _rows(con, INVOICES):
        if customer is not None and customer not in customer_index:
            # a customer with no order (only cancellations, say) has no RFM row
            customer_index[customer] = len(customers) + len(extra_customers)
            extra_customers.append(customer)
        invoices["invoice"].append(invoice)
        invoices["day"].append(day_index[day.isoformat()])
        invoices["country"].append(country_index[country])
        invoices["customer"].append(-1 if customer is None else customer_index[customer])
        invoices["gross"].append(int(gross))
        invoices["net"].append(int(net))
        invoices["cancel"].append(int(cancel))
        invoices["items"].append(int(items))
        invoices["order"].append(int(bool(is_order)))
        invoices["cancellation"].append(int(bool(is_cancellation)))

    if len(set(invoices["invoice"])) == len(invoices["invoice"]):
        del invoices["invoice"]  # one row per invoice: the row number is the invoice (the page falls back to it)

    seg_index = {s: i for i, s in enumerate(segment_names)}
    customer_segment = [seg_index[s] for _, s in segment_rows] + [-1] * len(extra_customers)

    product_rows = _rows(con, PRODUCTS)
    # the largest slice (about 300,000 rows on the full data set): fetched as columns, ordered by day;
    # day_start[d] .. day_start[d + 1] are day d's rows, so the rows carry no day column
    columns = con.execute(PRODUCT_DAYS).fetchnumpy()
    day_start = [0] * (len(days) + 1)
    for day in columns["day"].tolist():
        day_start[day + 1] += 1
    for d in range(len(days)):
        day_start[d + 1] += day_start[d]
    product_days = {"day_start": day_start, "product": columns["product"].tolist(),
                    "country": columns["country"].tolist(), "net": columns["net"].tolist()}

    quality_cols = ["batch_id", "source_uri", "state", "ingested_at", "outcome", "reason", "row_count", "rows_read",
                    "rows_loaded", "rows_quarantined", "rows_duplicate"]
    quality = [dict(zip(quality_cols, r)) for r in _rows(con, DATA_QUALITY)]
    totals = dict(zip(["net_revenue", "orders", "gross_sales", "cancellations"], _rows(con, MART_TOTALS)[0]))

    return {
        "money_scale": MONEY_SCALE,
        "days": days,
        "countries": countries,
        "segments": segment_names,
        "customer_segment": customer_segment,
        "invoices": invoices,
        "products": {"code": [r[0] for r in product_rows], "name": [r[1] for r in product_rows],
                     "abc": [r[2] for r in product_rows]},
        "product_days": product_days,
        "quality": [{k: (int(v) if isinstance(v, int) else v) for k, v in row.items()} for row in quality],
        "mart_totals": {k: (None if v is None else (int(v) if k == "orders" else str(v))) for k, v in totals.items()},
    }
