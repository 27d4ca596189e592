"""The analysts' API (retail_pipeline.analytics): every mart as a DataFrame, equal to a direct query
of the mart, on DuckDB (the reference run) and on the BigQuery emulator (the small workbook on the
emulator chain); the documented marts; fact filters; clear errors; the notebook in docs/analytics.md.
"""

from __future__ import annotations

import io
import math
import re
from contextlib import redirect_stdout
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from helpers import run_cli

REPO = Path(__file__).resolve().parents[1]
MARTS_DIR = REPO / "dbt" / "models" / "marts"
REFERENCE_NET_AMOUNT = Decimal("22075976.06")  # published figure of the reference workbook (README)
REFERENCE_FACT_ROWS = 536_637
#: marts that hold every fact line once: net_revenue + excluded_amount adds up to all line amounts
ALL_LINE_MARTS = ("mart_revenue_daily", "mart_revenue_monthly", "mart_revenue_by_country", "mart_invoices")


def documented_marts() -> dict[str, list[str]]:
    """Mart → its documented columns, read straight from the .yml files."""
    found = {}
    for path in MARTS_DIR.glob("*.yml"):
        for model in yaml.safe_load(path.read_text())["models"]:
            found[model["name"]] = [c["name"] for c in model["columns"]]
    return found


def plain(value):
    """A DataFrame cell as the Python value a database driver returns (None for any NA)."""
    if isinstance(value, (Decimal, str, date)) and not isinstance(value, pd.Timestamp):
        return value
    if value is None or pd.isna(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, np.generic):
        return value.item()
    return value


def frame_rows(frame: pd.DataFrame) -> list[tuple]:
    return [tuple(plain(v) for v in row) for row in frame.itertuples(index=False, name=None)]


def ordered_by_key(mart) -> str:
    """The mart's key as an ORDER BY (nulls last, as read_mart sorts); the key is unique (dbt tests it)."""
    return " order by " + ", ".join(f"{c} nulls last" for c in mart.key)


def assert_same_rows(frame: pd.DataFrame, direct: list[tuple], mart: str) -> None:
    """The frame holds the rows the warehouse returned for ``select * ... order by key``, in that order."""
    got = frame_rows(frame)
    assert len(got) == len(direct), f"{mart}: {len(got)} rows read, {len(direct)} in the mart"
    for a, b in zip(got, direct):
        assert a == b, f"{mart}: read {a} but the mart holds {b}"


def assert_dtypes(frame: pd.DataFrame, direct: list[tuple], mart: str) -> None:
    """Money as Decimal objects, dates as date objects, integers as Int64: judged by what the
    database driver returns for the same column."""
    for i, column in enumerate(frame.columns):
        values = [row[i] for row in direct if row[i] is not None]
        if not values:
            continue
        sample = values[0]
        series = frame[column].dropna()
        if isinstance(sample, Decimal):
            assert frame[column].dtype == object and all(isinstance(v, Decimal) for v in series), (mart, column)
        elif isinstance(sample, datetime):
            assert pd.api.types.is_datetime64_any_dtype(frame[column].dtype), (mart, column, frame[column].dtype)
        elif isinstance(sample, date):
            assert frame[column].dtype == object, (mart, column)
            assert all(type(v) is date for v in series), (mart, column)
        elif isinstance(sample, bool):
            assert frame[column].dtype == "boolean", (mart, column, frame[column].dtype)
        elif isinstance(sample, int):
            assert frame[column].dtype == "Int64", (mart, column, frame[column].dtype)
        elif isinstance(sample, str):
            assert pd.api.types.is_string_dtype(frame[column].dtype), (mart, column, frame[column].dtype)


def reference_analytics(reference_home: Path):
    from retail_pipeline.analytics import Analytics
    from retail_pipeline.config import Settings

    return Analytics.open(Settings.from_env(reference_home))


# ---------------------------------------------------------------- what the marts are


def test_marts_are_the_documented_marts_with_grain_and_columns():
    from retail_pipeline import analytics

    documented = {name: cols for name, cols in documented_marts().items() if name.startswith("mart_")}
    listed = analytics.marts()
    assert [m.name for m in listed] == sorted(documented)
    by_name = {m.name: m for m in listed}
    for name, columns in documented.items():
        assert list(by_name[name].columns) == columns
        assert by_name[name].grain.startswith("one row per"), (name, by_name[name].grain)
        assert "{{" not in by_name[name].description
    assert by_name["mart_revenue_monthly"].grain == "one row per invoice month with at least one fact line"
    assert by_name["mart_revenue_monthly"].columns["orders"] == "Distinct invoices with at least one gross-sales line."
    assert by_name["mart_cohort_retention"].key == ("cohort_month", "activity_month")
    assert by_name["mart_customer_rfm"].key == ("customer_id",)


def test_unknown_mart_or_column_is_a_clear_error(reference_home: Path):
    from retail_pipeline import analytics

    with pytest.raises(analytics.AnalyticsError) as err:
        reference_analytics(reference_home).read_mart("mart_revenue_montly")
    message = str(err.value)
    assert "'mart_revenue_montly'" in message and "did you mean mart_revenue_monthly" in message
    assert all(name in message for name in documented_marts() if name.startswith("mart_"))
    with pytest.raises(analytics.AnalyticsError, match="has no column 'revenue'.*net_revenue"):
        reference_analytics(reference_home).read_mart("mart_revenue_monthly", columns=["revenue"])
    with pytest.raises(ValueError, match="YYYY-MM"):
        reference_analytics(reference_home).fact(month="2011-13")


def test_cli_lists_marts_and_explains_an_unknown_one(reference_home: Path, tmp_path: Path):
    listed = run_cli(reference_home, "marts")
    assert "mart_revenue_monthly: one row per invoice month with at least one fact line" in listed.stdout.splitlines()
    unknown = run_cli(reference_home, "marts", "mart_nope", check=False)
    assert unknown.returncode == 1
    assert "Traceback" not in unknown.stderr
    assert unknown.stderr.startswith("Error: there is no mart 'mart_nope'")
    assert all(name in unknown.stderr for name in documented_marts() if name.startswith("mart_"))
    out = tmp_path / "monthly.csv"
    shown = run_cli(reference_home, "marts", "mart_revenue_monthly", "--csv", str(out))
    assert "(13 rows)" in shown.stdout and "  net_revenue: gross_sales + shipping" in shown.stdout
    csv = pd.read_csv(out, dtype=str)
    assert (
        sum(Decimal(v) for v in csv["net_revenue"]) + sum(Decimal(v) for v in csv["excluded_amount"])
        == REFERENCE_NET_AMOUNT
    )


def test_a_home_without_marts_says_to_run_first(tmp_path: Path):
    from retail_pipeline import analytics
    from retail_pipeline.config import Settings

    with pytest.raises(analytics.AnalyticsError, match="retail-pipeline run"):
        analytics.read_mart("mart_revenue_monthly", settings=Settings.from_env(tmp_path / "empty"))


# ---------------------------------------------------------------- DuckDB: the reference run


@pytest.mark.slow
def test_every_mart_reads_as_the_mart_holds_it_on_duckdb(reference_home: Path, duckdb_sql):
    source = reference_analytics(reference_home)
    db = reference_home / "warehouse.duckdb"
    for mart in source.marts():
        frame = source.read_mart(mart.name)
        direct = duckdb_sql(db, f"select * from {mart.name}{ordered_by_key(mart)}")
        assert list(frame.columns) == list(mart.columns)
        assert_same_rows(frame, direct, mart.name)
        assert_dtypes(frame, direct, mart.name)


@pytest.mark.slow
def test_money_of_the_marts_that_hold_every_line_adds_up_to_the_reference(reference_home: Path):
    source = reference_analytics(reference_home)
    for name in ALL_LINE_MARTS:
        frame = source.read_mart(name, columns=["net_revenue", "excluded_amount", "lines"])
        total = sum(frame["net_revenue"], Decimal(0)) + sum(frame["excluded_amount"], Decimal(0))
        assert total == REFERENCE_NET_AMOUNT, name
        assert int(frame["lines"].sum()) == REFERENCE_FACT_ROWS, name


@pytest.mark.slow
def test_fact_filters_by_month_and_country_in_the_warehouse(reference_home: Path, duckdb_sql):
    source = reference_analytics(reference_home)
    db = reference_home / "warehouse.duckdb"
    november = source.fact(month="2011-11", columns=["invoice_date", "invoice_datetime", "amount", "country"])
    ((lines, amount),) = duckdb_sql(
        db,
        "select lines, net_revenue + excluded_amount from mart_revenue_monthly where invoice_month = date '2011-11-01'",
    )
    assert len(november) == lines and sum(november["amount"], Decimal(0)) == amount
    assert november["invoice_date"].min() == date(2011, 11, 1) and november["invoice_date"].max() <= date(2011, 11, 30)
    assert november["invoice_datetime"].is_monotonic_increasing
    france = source.fact(month=date(2011, 11, 20), country="France")
    ((n, total),) = duckdb_sql(
        db,
        "select count(*), sum(amount) from fct_sales_lines where country = 'France' "
        "and invoice_date >= date '2011-11-01' and invoice_date < date '2011-12-01'",
    )
    assert 0 < len(france) == n and sum(france["amount"], Decimal(0)) == total
    assert set(france["country"]) == {"France"}
    assert list(france.columns) == [
        r[0]
        for r in duckdb_sql(
            db,
            "select column_name from information_schema.columns where table_schema = 'analytics' "
            "and table_name = 'fct_sales_lines' order by ordinal_position",
        )
    ]


@pytest.mark.slow
def test_docs_notebook_runs_and_prints_what_it_shows(reference_home: Path, monkeypatch: pytest.MonkeyPatch):
    """Every ```python block of docs/analytics.md runs (in order, one namespace) against the reference
    run; where a ```text block follows, it is exactly what the code printed."""
    for key in [k for k in __import__("os").environ if k.startswith("RETAIL_PIPELINE_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("RETAIL_PIPELINE_HOME", str(reference_home))
    text = (REPO / "docs" / "analytics.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```(python|text)\n(.*?)```", text, flags=re.S)
    assert sum(kind == "python" for kind, _ in blocks) >= 4
    namespace: dict = {}
    checked = 0
    for i, (kind, body) in enumerate(blocks):
        if kind != "python":
            continue
        out = io.StringIO()
        with redirect_stdout(out):
            exec(compile(body, f"docs/analytics.md block {i}", "exec"), namespace)
        if i + 1 < len(blocks) and blocks[i + 1][0] == "text":
            assert out.getvalue() == blocks[i + 1][1], f"block {i} printed:\n{out.getvalue()}"
            checked += 1
    assert checked >= 3


# ---------------------------------------------------------------- BigQuery: the emulator chain


@pytest.mark.emulator
def test_every_mart_reads_as_the_mart_holds_it_on_bigquery(emulator_run, bigquery_sql, monkeypatch):
    from retail_pipeline.analytics import Analytics

    for key, value in emulator_run.env.items():
        monkeypatch.setenv(key, value)
    source = Analytics.open(emulator_run.settings)
    assert source.label.startswith("bigquery://")
    for mart in source.marts():
        frame = source.read_mart(mart.name)
        direct = bigquery_sql(f"select * from {mart.name}{ordered_by_key(mart)}")
        assert len(direct) > 0, mart.name
        assert list(frame.columns) == list(mart.columns)
        assert_same_rows(frame, direct, mart.name)
        assert_dtypes(frame, direct, mart.name)
    for name in ALL_LINE_MARTS:
        frame = source.read_mart(name, columns=["net_revenue", "excluded_amount", "lines"])
        assert sum(frame["net_revenue"], Decimal(0)) + sum(frame["excluded_amount"], Decimal(0)) == Decimal(
            emulator_run.summary["warehouse"]["net_amount"]
        ), name
        assert int(frame["lines"].sum()) == emulator_run.summary["warehouse"]["fact_rows"], name


@pytest.mark.emulator
def test_bigquery_and_duckdb_give_the_same_frames(emulator_run, small_home: Path, monkeypatch):
    """The same workbook on both chains: the same DataFrames, dtypes and all (floats to 1e-12)."""
    from retail_pipeline.analytics import Analytics
    from retail_pipeline.config import Settings

    for key, value in emulator_run.env.items():
        monkeypatch.setenv(key, value)
    bigquery, duck = Analytics.open(emulator_run.settings), Analytics.open(Settings.from_env(small_home))
    for mart in duck.marts():
        if mart.name == "mart_data_quality":  # batch ids, sources and times are the run's own
            continue
        a, b = bigquery.read_mart(mart.name), duck.read_mart(mart.name)
        assert list(a.dtypes.astype(str)) == list(b.dtypes.astype(str)), mart.name
        assert len(a) == len(b), mart.name
        for column in a.columns:
            for x, y in zip(a[column], b[column]):
                x, y = plain(x), plain(y)
                if isinstance(x, float) and isinstance(y, float):
                    assert math.isclose(x, y, rel_tol=1e-12), (mart.name, column, x, y)
                else:
                    assert x == y, (mart.name, column, x, y)


@pytest.mark.emulator
def test_bigquery_fact_filters_by_month_and_country(emulator_run, bigquery_sql, monkeypatch):
    from retail_pipeline.analytics import Analytics

    for key, value in emulator_run.env.items():
        monkeypatch.setenv(key, value)
    source = Analytics.open(emulator_run.settings)
    month = source.months()[-2]
    ((country, n, total),) = bigquery_sql(
        f"select country, count(*), sum(amount) from fct_sales_lines where invoice_date >= date '{month}-01' "
        f"and invoice_month = date '{month}-01' group by country order by count(*) desc, country limit 1"
    )
    lines = source.fact(month=month, country=country)
    assert len(lines) == n > 0 and sum(lines["amount"], Decimal(0)) == total
    assert {d.strftime("%Y-%m") for d in lines["invoice_date"]} == {month}
    assert lines["unit_price"].map(type).eq(Decimal).all() and lines["quantity"].dtype == "Int64"
