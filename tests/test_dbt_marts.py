"""The marts on the reference workbook agree with computations written here from the raw workbook.

The expected figures come from the workbook itself (read with fastexcel into Arrow, exact
duplicates dropped, lines classified in this file's SQL from the data set's documented quirks),
never from the pipeline's tables. The marts come from the session's shared `reference_home`
(one `retail-pipeline run` of the workbook).
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

#: the revenue definitions, restated for the test: bucket by invoice prefix, then code, then quantity/price
CLASSIFY = """
    case
        when invoice_no like 'A%' then 'excluded'                                 -- adjust bad debt
        when invoice_no like 'C%' then 'cancellations'
        when stock_code in ('POST', 'DOT', 'C2') then 'shipping'
        when stock_code in ('BANK CHARGES', 'AMAZONFEE', 'CRUK') then 'excluded'  -- third-party fees
        when stock_code in ('D', 'M', 'm', 'S', 'PADS', 'B')
          or stock_code like 'gift_0001%' or stock_code like 'DCGS%' then 'adjustments'
        when quantity < 0 or (unit_price = 0 and customer_id is null) then 'excluded'  -- stock adjustment
        else 'gross_sales'                                                          -- sales and free items
    end
"""
NET_BUCKETS = "('gross_sales', 'shipping', 'cancellations', 'adjustments')"


@pytest.fixture(scope="module")
def workbook_lines(reference_workbook: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB holding the workbook's distinct lines with a revenue bucket each."""
    import fastexcel

    reader = fastexcel.read_excel(str(reference_workbook))
    sheet = reader.load_sheet(
        0, dtypes={c: "string" for c in ("InvoiceNo", "StockCode", "Description", "CustomerID", "Country")}
    )
    table = sheet.to_arrow()
    con = duckdb.connect()
    con.register("workbook", table)
    con.execute(f"""
        create table lines as
        with distinct_rows as (select distinct * from workbook),
        typed as (
            select
                trim(InvoiceNo) as invoice_no, trim(StockCode) as stock_code,
                cast(Quantity as bigint) as quantity, cast(UnitPrice as decimal(18, 4)) as unit_price,
                nullif(trim(CustomerID), '') as customer_id, InvoiceDate as invoice_at,
                cast(InvoiceDate as date) as invoice_date, date_trunc('month', InvoiceDate)::date as invoice_month
            from distinct_rows
        )
        select *, quantity * unit_price as amount, {CLASSIFY} as bucket from typed
    """)
    con.execute(f"create table read_rows as select {table.num_rows} as n")
    return con


@pytest.fixture
def marts(reference_home: Path) -> duckdb.DuckDBPyConnection:
    """The shared reference warehouse, read-only (closed after each test: dbt needs the file to itself)."""
    con = duckdb.connect(str(reference_home / "warehouse.duckdb"), read_only=True)
    yield con
    con.close()


def test_fact_keeps_every_distinct_line_and_the_exact_total(workbook_lines, marts):
    expected = workbook_lines.execute("select count(*), sum(amount) from lines").fetchone()
    got = marts.execute("select count(*), sum(quantity * unit_price) from analytics.fct_sales_lines").fetchone()
    assert got == expected
    assert expected == (536_637, Decimal("22075976.0600"))  # the published reference figures


def test_monthly_net_revenue_orders_and_customers_agree(workbook_lines, marts):
    expected = workbook_lines.execute(f"""
        select invoice_month,
               sum(case when bucket in {NET_BUCKETS} then amount else 0 end),
               sum(amount),
               count(distinct case when bucket = 'gross_sales' then invoice_no end),
               count(distinct case when bucket = 'gross_sales' then customer_id end)
        from lines group by 1 order by 1""").fetchall()
    got = marts.execute("""
        select invoice_month, net_revenue, net_revenue + excluded_amount, orders, customers
        from analytics.mart_revenue_monthly order by 1""").fetchall()
    assert len(expected) == 13
    assert got == expected
    # the daily mart rolls up to the same money
    daily = marts.execute("""select invoice_month, sum(net_revenue) from analytics.mart_revenue_daily
                             group by 1 order by 1""").fetchall()
    assert daily == [(m, net) for m, net, *_ in expected]


def test_revenue_by_country_sums_to_the_total(workbook_lines, marts):
    total = workbook_lines.execute(f"select sum(amount) from lines where bucket in {NET_BUCKETS}").fetchone()[0]
    by_country = marts.execute("select sum(net_revenue), count(*) from analytics.mart_revenue_by_country").fetchone()
    assert by_country[0] == total
    assert by_country[1] == workbook_lines.execute("select count(distinct Country) from workbook").fetchone()[0]


def _score_low(value: int, limits: list[int]) -> int:
    """5 when value <= limits[0], 4 when <= limits[1], ... else 1."""
    for i, limit in enumerate(limits):
        if value <= limit:
            return 5 - i
    return 1


def _score_high(value, limits: list) -> int:
    """1 when value < limits[0], 2 when < limits[1], ... else 5."""
    for i, limit in enumerate(limits):
        if value < limit:
            return i + 1
    return 5


def _segment(r: int, f: int, m: int) -> str:
    if r >= 4 and f >= 4 and m >= 4:
        return "Champions"
    if r >= 3 and f >= 4:
        return "Loyal"
    if r >= 4 and f == 1:
        return "New"
    if r >= 4:
        return "Potential loyalist"
    if r <= 2 and f >= 3:
        return "At risk"
    return {2: "Hibernating", 1: "Lost"}.get(r, "Needs attention")


def test_customers_per_rfm_segment_agree(workbook_lines, marts):
    as_of = workbook_lines.execute("select max(invoice_date) from lines").fetchone()[0]
    as_of = date.fromordinal(as_of.toordinal() + 1)
    rows = workbook_lines.execute(f"""
        select customer_id,
               max(case when bucket = 'gross_sales' then invoice_date end),
               count(distinct case when bucket = 'gross_sales' then invoice_no end),
               sum(case when bucket in {NET_BUCKETS} then amount else 0 end)
        from lines where customer_id is not null
        group by 1
        having count(distinct case when bucket = 'gross_sales' then invoice_no end) > 0""").fetchall()
    expected = Counter()
    for _customer, last_order, orders, net in rows:
        r = _score_low((as_of - last_order).days, [30, 60, 120, 240])
        f = _score_high(orders, [2, 3, 5, 10])
        m = _score_high(net, [Decimal(300), Decimal(1000), Decimal(2000), Decimal(5000)])
        expected[_segment(r, f, m)] += 1
    got = dict(marts.execute("select segment, count(*) from analytics.mart_customer_rfm group by 1").fetchall())
    assert got == dict(expected)
    assert sum(got.values()) == len(rows) > 4000
    assert marts.execute("select distinct as_of_date from analytics.mart_customer_rfm").fetchall() == [(as_of,)]


def test_cohort_sizes_agree(workbook_lines, marts):
    expected = workbook_lines.execute("""
        select first_month, count(*) from (
            select customer_id, min(invoice_month) as first_month
            from lines where bucket = 'gross_sales' and customer_id is not null group by 1)
        group by 1 order by 1""").fetchall()
    got = marts.execute("""select cohort_month, cohort_size from analytics.mart_cohort_retention
                           where months_since_first_order = 0 order by 1""").fetchall()
    assert got == expected
    # the second month of the first cohort: customers of Dec 2010 who ordered again in Jan 2011
    returning = workbook_lines.execute("""
        with first as (select customer_id, min(invoice_month) m from lines
                       where bucket = 'gross_sales' and customer_id is not null group by 1)
        select count(distinct l.customer_id) from lines l join first using (customer_id)
        where first.m = date '2010-12-01' and l.invoice_month = date '2011-01-01' and l.bucket = 'gross_sales'
    """).fetchone()[0]
    assert (
        marts.execute("""select active_customers from analytics.mart_cohort_retention
                            where cohort_month = date '2010-12-01' and activity_month = date '2011-01-01'
                         """).fetchone()[0]
        == returning
    )


def test_data_quality_accounts_for_every_row_read(workbook_lines, marts):
    read = workbook_lines.execute("select n from read_rows").fetchone()[0]
    distinct = workbook_lines.execute("select count(*) from lines").fetchone()[0]
    got = dict(marts.execute("select outcome, sum(row_count) from analytics.mart_data_quality group by 1").fetchall())
    assert got == {"loaded": distinct, "duplicate": read - distinct}
    assert read == 541_909


def test_top_products_and_abc_classes(workbook_lines, marts):
    top = marts.execute("""select stock_code, net_revenue from analytics.mart_product_performance
                           where revenue_rank <= 3 order by revenue_rank""").fetchall()
    for code, net in top:
        expected = workbook_lines.execute(
            f"""select sum(amount) from lines
            where stock_code = ? and bucket in {NET_BUCKETS}""",
            [code],
        ).fetchone()[0]
        assert net == expected
    classes = dict(
        marts.execute("""select abc_class, sum(case when net_revenue > 0 then net_revenue else 0 end)
                                    from analytics.mart_product_performance group by 1""").fetchall()
    )
    total = sum(classes.values())
    # A holds at least 80 % of positive product net revenue, A + B at least 95 %, and C the rest
    assert classes["A"] / total >= Decimal("0.8")
    assert (classes["A"] + classes["B"]) / total >= Decimal("0.95")
    assert (
        marts.execute("""select count(*) from analytics.mart_product_performance
                            where stock_code in ('POST', 'DOT', 'M', 'BANK CHARGES', 'AMAZONFEE')""").fetchone()[0]
        == 0
    )


def test_docs_site_builds_offline(reference_home: Path, tmp_path: Path):
    """`retail-pipeline docs` (what `make docs` runs), in its own process: dbt keeps the DuckDB file open."""
    import json

    from helpers import run_cli

    out = run_cli(reference_home, "docs", "--out", str(tmp_path / "docs")).stdout
    site = tmp_path / "docs" / "static_index.html"
    assert f"dbt docs: {site}" in out
    manifest = json.loads((tmp_path / "docs" / "manifest.json").read_text())
    catalog = json.loads((tmp_path / "docs" / "catalog.json").read_text())
    marts_documented = {
        n["name"] for n in manifest["nodes"].values() if n["resource_type"] == "model" and n["name"].startswith("mart_")
    }
    assert marts_documented == {
        "mart_revenue_daily",
        "mart_revenue_monthly",
        "mart_revenue_by_country",
        "mart_product_performance",
        "mart_customer_rfm",
        "mart_cohort_retention",
        "mart_data_quality",
        "mart_invoices",
        "mart_product_sales_daily",
    }
    daily = manifest["nodes"]["model.retail.mart_revenue_daily"]
    assert "Net revenue" in daily["description"] and "one row per invoice day" in daily["description"].lower()
    assert all(c["description"] for c in daily["columns"].values())
    assert "model.retail.mart_customer_rfm" in catalog["nodes"]  # the catalog saw the built tables
    assert site.stat().st_size > 100_000 and "mart_cohort_retention" in site.read_text()
