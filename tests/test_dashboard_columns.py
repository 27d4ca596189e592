"""The dashboard's vectorised shaping (dashboard/columns.py, queries.collect) and its JSON writer
(dashboard/page_json.py), checked against plain computations:

- collect() on a real run equals, row by row, what plain SQL over that run's marts says;
- hand-made marts with the awkward cases (an invoice number in two countries, customers without an
  RFM row or without an id, rows in any order, nulls) give page data written out here by hand;
- a key that is missing from the mart that numbers it is named in the error;
- the JSON writer gives exactly json.dumps' text.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from retail_pipeline.analytics import Analytics, AnalyticsError
from retail_pipeline.config import Settings
from retail_pipeline.dashboard import columns, page_json, queries


def page_data(home: Path) -> dict:
    """collect() of the home's marts, through the page's JSON writer and back."""
    return json.loads(page_json.script_json(queries.collect(Analytics.open(Settings.from_env(home, environ={})))))


# ---------------------------------------------------------------- a real run against plain SQL


def test_collect_equals_plain_sql_over_the_marts(small_home: Path, duckdb_sql):
    def sql(statement: str) -> list[tuple]:
        return duckdb_sql(small_home / "warehouse.duckdb", statement)

    def units(amount: Decimal) -> int:
        assert amount == amount.quantize(Decimal("0.0001"))
        return int(amount * 10_000)

    data = page_data(small_home)
    days = [d.isoformat() for (d,) in sql("select invoice_date from mart_revenue_daily order by invoice_date")]
    countries = [c for (c,) in sql("select country from mart_revenue_by_country order by revenue_rank")]
    codes = [c for (c,) in sql("select stock_code from mart_product_performance order by revenue_rank")]
    customers = [c for (c,) in sql("select customer_id from mart_customer_rfm order by customer_id")]
    assert (data["days"], data["countries"], data["products"]["code"]) == (days, countries, codes)

    rows = sql(
        "select invoice_date, invoice_no, country, customer_id, is_order, is_cancellation, gross_sales, "
        "net_revenue, cancellations, items_sold from mart_invoices "
        "order by invoice_date, invoice_no, country, customer_id nulls last"
    )
    numbers = {c: i for i, c in enumerate(customers)}
    for customer in (r[3] for r in rows):
        if customer is not None and customer not in numbers:
            numbers[customer] = len(numbers)  # no RFM row: after those that have one, in invoice order
    invoice_nos = sorted({r[1] for r in rows})
    expected = {
        "invoice": [invoice_nos.index(r[1]) for r in rows],
        "day": [days.index(r[0].isoformat()) for r in rows],
        "country": [countries.index(r[2]) for r in rows],
        "customer": [-1 if r[3] is None else numbers[r[3]] for r in rows],
        "gross": [units(r[6]) for r in rows],
        "net": [units(r[7]) for r in rows],
        "cancel": [units(r[8]) for r in rows],
        "items": [r[9] or 0 for r in rows],
        "order": [int(bool(r[4])) for r in rows],
        "cancellation": [int(bool(r[5])) for r in rows],
    }
    if len(invoice_nos) == len(rows):
        del expected["invoice"]
    assert data["invoices"] == expected
    assert any(c == -1 for c in expected["customer"]) and len(numbers) > len(customers)  # both cases occur

    lines = sorted(
        (days.index(d.isoformat()), codes.index(code), countries.index(country), units(net))
        for d, code, country, net in sql(
            "select invoice_date, stock_code, country, net_revenue from mart_product_sales_daily"
        )
    )
    per_day = [sum(1 for line in lines if line[0] == d) for d in range(len(days))]
    assert data["product_days"] == {
        "day_start": [sum(per_day[:d]) for d in range(len(days) + 1)],
        "product": [line[1] for line in lines],
        "country": [line[2] for line in lines],
        "net": [line[3] for line in lines],
    }


# ---------------------------------------------------------------- hand-made marts

MARTS = """
create schema analytics;
create table analytics.mart_revenue_daily (invoice_date date);
insert into analytics.mart_revenue_daily values ('2011-01-05'), ('2011-01-03'), ('2011-01-04');
create table analytics.mart_revenue_by_country (country varchar, revenue_rank bigint);
insert into analytics.mart_revenue_by_country values ('EIRE', 3), ('United Kingdom', 1), ('France', 2);
create table analytics.mart_customer_rfm (customer_id varchar, segment varchar);
insert into analytics.mart_customer_rfm values ('12350', 'At risk'), ('12347', 'Champions');
create table analytics.mart_invoices (invoice_no varchar, invoice_date date, country varchar, customer_id varchar,
    is_order boolean, is_cancellation boolean, gross_sales decimal(38, 4), net_revenue decimal(38, 4),
    cancellations decimal(38, 4), items_sold bigint);
insert into analytics.mart_invoices values
    ('536500', '2011-01-04', 'France', '12350', true, false, 10.5, 10.5, 0, 3),
    ('C536501', '2011-01-04', 'United Kingdom', '99999', false, true, 0, -2.25, -2.25, null),
    ('536402', '2011-01-05', 'EIRE', '99998', true, null, 5, 5, 0, 2),
    ('536400', '2011-01-03', 'United Kingdom', null, true, false, 1234.5678, 1230.0001, 0, 7),
    ('536500', '2011-01-04', 'EIRE', '12347', true, false, 1, 1, 0, 1),
    ('536401', '2011-01-05', 'EIRE', '99999', true, false, 0.0001, 0.0001, 0, 1);
create table analytics.mart_product_performance (stock_code varchar, description varchar, abc_class varchar,
    revenue_rank bigint);
insert into analytics.mart_product_performance values
    ('22423', null, 'B', 2), ('POST', 'POSTAGE', 'C', 3), ('85123A', 'WHITE HANGING HEART', 'A', 1);
create table analytics.mart_product_sales_daily (invoice_date date, country varchar, stock_code varchar,
    net_revenue decimal(38, 4));
insert into analytics.mart_product_sales_daily values
    ('2011-01-05', 'EIRE', '22423', 5), ('2011-01-03', 'United Kingdom', 'POST', 1230.0001),
    ('2011-01-04', 'France', '85123A', 10.5), ('2011-01-04', 'EIRE', '85123A', 1),
    ('2011-01-04', 'United Kingdom', '22423', -2.25), ('2011-01-05', 'EIRE', '85123A', 0.0001);
create table analytics.mart_data_quality (batch_id varchar, source_uri varchar, state varchar,
    ingested_at timestamptz, outcome varchar, reason varchar, row_count bigint, rows_read bigint,
    rows_loaded bigint, rows_quarantined bigint, rows_duplicate bigint);
insert into analytics.mart_data_quality values
    ('b1', 'file:///book.xlsx', 'ingested', '2011-12-10 10:00:00+00', 'loaded', 'ok', 6, 6, 6, 0, 0);
create table analytics.mart_revenue_monthly (invoice_month date, net_revenue decimal(38, 4), orders bigint,
    gross_sales decimal(38, 4), cancellations decimal(38, 4));
insert into analytics.mart_revenue_monthly values ('2011-01-01', 1000.5, 3, 1100, -99.5), ('2011-02-01', 0.25, 1, 0.25, 0);
"""


def handmade_home(tmp_path: Path, *more_sql: str) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    try:
        for statement in (MARTS, *more_sql):
            con.execute(statement)
    finally:
        con.close()
    return home


def test_handmade_marts_give_the_page_data_written_out_by_hand(tmp_path: Path):
    data = page_data(handmade_home(tmp_path))
    assert data["days"] == ["2011-01-03", "2011-01-04", "2011-01-05"]
    assert data["countries"] == ["United Kingdom", "France", "EIRE"]
    assert data["segments"] == ["At risk", "Champions"]
    # customers 12347, 12350 (RFM, by id), then 99999 and 99998 (no RFM row, in invoice order): no segment
    assert data["customer_segment"] == [1, 0, -1, -1]
    # rows by day, invoice number, country, customer: 536400 UK; 536500 EIRE, 536500 France,
    # C536501 UK; 536401 EIRE, 536402 EIRE. 536500 is two rows, so invoices carry their numbers
    assert data["invoices"] == {
        "invoice": [0, 3, 3, 4, 1, 2],
        "day": [0, 1, 1, 1, 2, 2],
        "country": [0, 2, 1, 0, 2, 2],
        "customer": [-1, 0, 1, 2, 2, 3],
        "gross": [12345678, 10000, 105000, 0, 1, 50000],
        "net": [12300001, 10000, 105000, -22500, 1, 50000],
        "cancel": [0, 0, 0, -22500, 0, 0],
        "items": [7, 1, 3, 0, 1, 2],
        "order": [1, 1, 1, 0, 1, 1],
        "cancellation": [0, 0, 0, 1, 0, 0],
    }
    assert data["products"] == {
        "code": ["85123A", "22423", "POST"],
        "name": ["WHITE HANGING HEART", "22423", "POSTAGE"],
        "abc": ["A", "B", "C"],
    }
    # by day, then product in revenue order, then country in revenue order
    assert data["product_days"] == {
        "day_start": [0, 1, 4, 6],
        "product": [2, 0, 0, 1, 0, 1],
        "country": [0, 1, 2, 0, 2, 2],
        "net": [12300001, 105000, 10000, -22500, 1, 50000],
    }
    assert data["mart_totals"] == {
        "net_revenue": "1000.7500",
        "orders": 4,
        "gross_sales": "1100.2500",
        "cancellations": "-99.5000",
    }
    assert [q["ingested_at"] for q in data["quality"]] == ["2011-12-10 10:00:00+00:00"]


@pytest.mark.parametrize(
    ("statement", "named"),
    [
        (
            "insert into analytics.mart_product_sales_daily values ('2011-01-04', 'EIRE', 'GONE', 1)",
            "product 'GONE'",
        ),
        (
            "insert into analytics.mart_invoices values "
            "('536999', '2011-01-04', 'Atlantis', null, true, false, 1, 1, 0, 1)",
            "country 'Atlantis'",
        ),
        (
            "insert into analytics.mart_invoices values "
            "('536999', '2011-02-01', 'EIRE', null, true, false, 1, 1, 0, 1)",
            "invoice day datetime.date(2011, 2, 1)",
        ),
        (
            "insert into analytics.mart_product_sales_daily values ('2011-01-04', 'Atlantis', 'POST', 1)",
            "country 'Atlantis'",
        ),
    ],
)
def test_a_key_missing_from_the_mart_that_numbers_it_is_named(tmp_path: Path, statement: str, named: str):
    home = handmade_home(tmp_path, statement)
    with pytest.raises(ValueError, match="is in one mart but not in another") as caught:
        queries.collect(Analytics.open(Settings.from_env(home, environ={})))
    assert str(caught.value).startswith(named), caught.value


def test_read_mart_arrow_checks_columns_and_says_when_a_mart_is_not_built(tmp_path: Path):
    source = Analytics.open(Settings.from_env(handmade_home(tmp_path), environ={}))
    table = source.read_mart_arrow("mart_invoices", columns=["invoice_no", "net_revenue"])
    assert table.column_names == ["invoice_no", "net_revenue"] and table.num_rows == 6
    assert table.schema.field("net_revenue").type == pa.decimal128(38, 4)
    with pytest.raises(AnalyticsError, match="mart_invoices has no column 'revenue'"):
        source.read_mart_arrow("mart_invoices", columns=["revenue"])
    with pytest.raises(AnalyticsError, match="mart_cohort_retention is not in the warehouse yet"):
        source.read_mart_arrow("mart_cohort_retention")


# ---------------------------------------------------------------- the column helpers


def test_money_units_of_every_decimal_shape():
    amounts = [Decimal("1.2345"), Decimal("-0.0001"), None, Decimal("-92233720368.5477"), Decimal("0")]
    expected = [12345, -1, None, -922337203685477, 0]
    duck = pa.array(amounts, pa.decimal128(38, 4))  # DuckDB DECIMAL(38,4)
    assert columns.money_units(duck, 4) == expected
    assert columns.money_units(pa.array(amounts, pa.decimal128(38, 9)), 4) == expected  # BigQuery NUMERIC
    assert columns.money_units(pa.array(amounts, pa.decimal256(76, 38)), 4) == expected  # BIGNUMERIC
    pieces = pa.chunked_array([duck.slice(0, 2), duck.slice(2, 1), duck.slice(3)])  # offsets into one buffer
    assert columns.money_units(pieces, 4) == expected
    whole = columns.money_units(pa.array(amounts[:2], pa.decimal128(18, 4)), 4)
    assert isinstance(whole, np.ndarray) and whole.tolist() == [12345, -1]
    with pytest.raises(pa.ArrowInvalid):
        columns.money_units(pa.array([Decimal("1.00005")], pa.decimal128(38, 9)), 4)  # finer than the scale
    with pytest.raises(OverflowError):
        columns.money_units(pa.array([Decimal("1e16")], pa.decimal128(38, 4)), 4)  # 1e20 units: beyond int64


def test_row_order_is_lexsort_with_ties_in_row_order():
    rng = np.random.default_rng(5)
    for rows in (0, 1, 2, 7, 5000):
        a, b, c = rng.integers(0, 3, rows), rng.integers(0, 2, rows), rng.integers(0, 4, rows)
        assert columns.row_order((a, 3), (b, 2), (c, 4)).tolist() == np.lexsort((c, b, a)).tolist()
        huge = rng.integers(0, 2**40, rows)  # the keys no longer fit one int64: the lexsort route
        assert columns.row_order((huge, 2**40), (a, 3), (huge, 2**40)).tolist() == np.lexsort((huge, a, huge)).tolist()


def test_numbered_ranks_positions():
    known = pa.array(["a", "b"])
    numbers, extra = columns.numbered(pa.chunked_array([["b", None, "z"], ["a", "y", "z", "x", "y"]]), known)
    assert (numbers.tolist(), extra) == ([1, -1, 2, 0, 3, 2, 4, 3], 3)  # z, y, x: after a, b, as they come
    assert columns.numbered(pa.array(["b", None]), known)[0].tolist() == [1, -1]
    ranks, distinct = columns.ranks(pa.array(["b", "a", "b", "C", "é"]))  # code point order, as sorted()
    assert (ranks.tolist(), distinct) == ([2, 1, 2, 0, 3], 4)
    days = pa.chunked_array([[date(2011, 1, 1)], [date(2011, 1, 2)]], pa.date32())
    assert columns.positions(pa.array([date(2011, 1, 2), date(2011, 1, 1)]), days, "day").tolist() == [1, 0]
    assert columns.positions(pa.array(["b"], pa.large_string()), known, "country").tolist() == [1]
    assert columns.counts(pa.array([3, None, 0])).tolist() == [3, 0, 0]
    assert columns.flags(pa.chunked_array([[True, None], [False]])).tolist() == [1, 0, 0]


def test_quality_times_are_iso_text_in_utc():
    paris = pa.chunked_array([pa.array([0, 1_500_000, None], pa.timestamp("us", tz="Europe/Paris"))])
    assert queries._iso_times(paris) == ["1970-01-01 00:00:00+00:00", "1970-01-01 00:00:01.500000+00:00", None]
    naive = pa.chunked_array([pa.array([86_400_001], pa.timestamp("ms"))])
    assert queries._iso_times(naive) == ["1970-01-02 00:00:00.001000"]


# ---------------------------------------------------------------- the JSON writer


def test_script_json_is_json_dumps_escaped_for_a_script_element():
    extremes = np.array([np.iinfo(np.int64).min, -1, 0, 1, np.iinfo(np.int64).max])
    data = {
        "text": "</script><!-- & \u2028 \u2029 café 'q' \"d\" \n",
        "nested": {"big": extremes, "small": np.array([0, 1], dtype=np.int8), "none": np.array([], dtype=np.int32)},
        "list": [1, None, "<b>", {"k": 2.5}],
        "money": [1, None, -3],
        "empty": {},
    }
    plain = {**data, "nested": {k: v.tolist() for k, v in data["nested"].items()}}
    text = json.dumps(plain, separators=(",", ":"), ensure_ascii=False)
    for raw, escaped in page_json.SCRIPT_ESCAPES:
        text = text.replace(raw, escaped)
    assert page_json.script_json(data) == text
    assert "<" not in text and "\u2028" not in text
    for values in (extremes, np.arange(-1000, 1000, dtype=np.int32), np.array([], dtype=np.int64)):
        assert (
            page_json.integer_list(values)
            == page_json.integer_list_slowly(values)
            == json.dumps(values.tolist(), separators=(",", ":"))
        )
    with pytest.raises(TypeError):
        page_json.integer_list(np.array([0.5]))


# ---------------------------------------------------------------- BigQuery (the emulator chain)


@pytest.mark.emulator
def test_bigquery_gives_the_same_arrow_mart_as_duckdb(emulator_run, small_home: Path, bigquery_sql, monkeypatch):
    """read_mart_arrow on BigQuery (NUMERIC arrives as decimal128(38, 9)) and on DuckDB (DECIMAL(38, 4))
    of the same workbook: the same rows, the same money units; the units add up to BigQuery's own sum."""
    for key, value in emulator_run.env.items():
        monkeypatch.setenv(key, value)
    bigquery = Analytics.open(emulator_run.settings)
    duck = Analytics.open(Settings.from_env(small_home, environ={}))
    wanted = ["invoice_date", "stock_code", "country", "net_revenue"]
    from_bigquery = bigquery.read_mart_arrow("mart_product_sales_daily", columns=wanted)
    from_duckdb = duck.read_mart_arrow("mart_product_sales_daily", columns=wanted)
    assert from_bigquery.schema.field("net_revenue").type == pa.decimal128(38, 9)

    def rows(table: pa.Table) -> list[tuple]:
        units = list(columns.money_units(table["net_revenue"], 4))
        keys = zip(*(table[c].to_pylist() for c in wanted[:3]))
        return sorted((*key, unit) for key, unit in zip(keys, units))

    assert rows(from_bigquery) == rows(from_duckdb)
    ((total,),) = bigquery_sql("select sum(net_revenue) from mart_product_sales_daily")
    assert sum(unit for *_, unit in rows(from_bigquery)) == int(Decimal(total) * 10_000)
