"""The incremental fact: a batch rewrites only the invoice months it touched, and the result
equals a full refresh.

Starts from a copy of the session's reference home (536,637 fact lines, written by one dbt run),
then drops a second file touching only March 2011 (three new lines and one line identical to a
reference line), then a new generation of that file touching only April 2011 (which supersedes
the March lines: they must leave the fact although the new generation does not name March).
Which run wrote each fact row is visible in its `dbt_invocation_id`.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from helpers import good_row, write_workbook
from loaded_batch import ingest_and_load

REFERENCE_LINES = 536_637
REFERENCE_TOTAL = Decimal("22075976.06")
BUSINESS_COLUMNS = (
    "line_id, invoice_no, stock_code, customer_id, description, country, line_type, quantity, "
    "unit_price, amount, invoice_datetime, invoice_date, invoice_month, batch_id, source_uri, "
    "source_generation, source_sheet, source_row"
)


def _fact(home: Path, sql: str, params: list | None = None) -> list[tuple]:
    # read-write, like dbt's own connection in this process (DuckDB refuses mixed configurations)
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        return con.execute(sql, params or []).fetchall()


def _writers_by_month(home: Path) -> dict[str, set[str]]:
    """invoice month -> the dbt invocations that wrote its fact rows."""
    out: dict[str, set[str]] = {}
    for month, invocation in _fact(
        home, "select distinct strftime(invoice_month, '%Y-%m'), dbt_invocation_id from analytics.fct_sales_lines"
    ):
        out.setdefault(month, set()).add(invocation)
    return out


def _run(ctx, workbook: Path) -> str:
    """Drop the file as extra.xlsx, ingest and load it, then run the transform stage; returns the batch id."""
    from retail_pipeline.stages import transform_batch

    batch_id = ingest_and_load(ctx, workbook.parent, name="extra.xlsx", rows=None, path=workbook)
    result = transform_batch(batch_id)
    assert result["status"] == "success" and result["tests_failed"] == 0, result
    assert result["batches"] == [batch_id]
    return batch_id


@pytest.fixture
def home(reference_home: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """A private copy of the reference home (the shared one stays untouched), installed as the context."""
    from retail_pipeline import context
    from retail_pipeline.config import Settings

    copy = tmp_path_factory.mktemp("incremental") / "home"
    shutil.copytree(reference_home, copy, ignore=shutil.ignore_patterns("docs", "dashboard*"))
    for key in [k for k in os.environ if k.startswith("RETAIL_PIPELINE_")]:
        monkeypatch.delenv(key)
    ctx = context.Context(Settings.from_env(copy))
    context.use(ctx)
    yield ctx
    context.use(None)


def test_second_batch_rewrites_only_its_months_and_equals_a_full_refresh(home, tmp_path: Path):
    ctx, home = home, home.settings.home
    before = _writers_by_month(home)
    assert len(before) == 13 and all(len(v) == 1 for v in before.values())
    [reference_run] = set().union(*before.values())

    # a reference line of March 2011, to be sent again by another file
    twin = _fact(
        home,
        """select invoice_no, stock_code, description, quantity, invoice_datetime, unit_price,
                                 customer_id, country, line_id, batch_id
                          from analytics.fct_sales_lines
                          where invoice_month = date '2011-03-01' and line_type = 'sale'
                            and customer_id is not null and description is not null
                          order by line_id limit 1""",
    )[0]
    inv, code, desc, qty, when, price, customer, country, twin_line_id, reference_batch = twin
    twin_row = [int(inv) if inv.isdigit() else inv, code, desc, qty, when, float(price), int(customer), country]
    new_march = [
        good_row(
            invoice=900001,
            stock="22633",
            qty=10,
            price=1.25,
            customer=99001,
            country="Iceland",
            when=datetime(2011, 3, 15, 10, 0),
            description="HAND WARMER UNION JACK",
        ),
        good_row(
            invoice=900001,
            stock="POST",
            qty=1,
            price=40.0,
            customer=99001,
            country="Iceland",
            when=datetime(2011, 3, 15, 10, 0),
            description="POSTAGE",
        ),
        good_row(
            invoice=900002,
            stock="22632",
            qty=3,
            price=2.1,
            customer=99001,
            country="Iceland",
            when=datetime(2011, 3, 28, 16, 5),
            description="HAND WARMER RED POLKA DOT",
        ),
    ]
    march_amount = Decimal("12.50") + Decimal("40.00") + Decimal("6.30")

    # ---- batch 2: March only
    workbook = write_workbook(tmp_path / "extra.xlsx", new_march + [twin_row])
    batch2 = _run(ctx, workbook)
    after2 = _writers_by_month(home)
    assert {m: v for m, v in after2.items() if m != "2011-03"} == {m: v for m, v in before.items() if m != "2011-03"}
    [march_run] = after2["2011-03"]
    assert march_run != reference_run
    assert _fact(
        home,
        """select count(*) from analytics.fct_sales_lines
                          where invoice_month = date '2011-03-01' and transform_batch_id <> ?""",
        [batch2],
    ) == [(0,)]
    assert _fact(home, "select count(*), sum(amount) from analytics.fct_sales_lines") == [
        (REFERENCE_LINES + 3, REFERENCE_TOTAL + march_amount)
    ]
    # the line sent twice appears once, from the newer source
    assert _fact(home, "select batch_id from analytics.fct_sales_lines where line_id = ?", [twin_line_id]) == [
        (batch2,)
    ]

    # ---- batch 3: a new generation of extra.xlsx, April only; March's lines of the old generation must go
    new_april = [
        good_row(
            invoice=900010,
            stock="22633",
            qty=4,
            price=1.25,
            customer=99001,
            country="Iceland",
            when=datetime(2011, 4, 2, 9, 0),
            description="HAND WARMER UNION JACK",
        ),
        good_row(
            invoice=900010,
            stock="22632",
            qty=2,
            price=2.1,
            customer=99001,
            country="Iceland",
            when=datetime(2011, 4, 2, 9, 0),
            description="HAND WARMER RED POLKA DOT",
        ),
    ]
    (tmp_path / "v2").mkdir()
    workbook = write_workbook(tmp_path / "v2" / "extra.xlsx", new_april)
    batch3 = _run(ctx, workbook)
    assert batch3 != batch2
    after3 = _writers_by_month(home)
    untouched = {m for m in before if m not in ("2011-03", "2011-04")}
    assert {m: after3[m] for m in untouched} == {m: before[m] for m in untouched}
    assert len(after3["2011-03"]) == 1 and after3["2011-03"] == after3["2011-04"]
    assert after3["2011-03"].isdisjoint({reference_run, march_run})
    assert _fact(home, "select count(*), sum(amount) from analytics.fct_sales_lines") == [
        (REFERENCE_LINES + 2, REFERENCE_TOTAL + Decimal("5.00") + Decimal("4.20"))
    ]
    assert _fact(home, "select count(*) from analytics.fct_sales_lines where batch_id = ?", [batch2]) == [(0,)]
    assert _fact(home, "select batch_id from analytics.fct_sales_lines where line_id = ?", [twin_line_id]) == [
        (reference_batch,)
    ]

    # ---- a full refresh gives the same rows
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        con.execute(
            f"create table analytics.fct_incremental as select {BUSINESS_COLUMNS} from analytics.fct_sales_lines"
        )
    from retail_pipeline.transform import DbtTransformer

    result = DbtTransformer(ctx.settings).build(["--select", "fct_sales_lines", "--full-refresh"], command="run")
    assert result.status == "success" and result.models_built == 1, result
    assert _fact(
        home,
        f"""select count(*) from (
                             (select {BUSINESS_COLUMNS} from analytics.fct_sales_lines
                              except all select * from analytics.fct_incremental)
                             union all
                             (select * from analytics.fct_incremental
                              except all select {BUSINESS_COLUMNS} from analytics.fct_sales_lines))""",
    ) == [(0,)]
    assert _fact(home, "select count(*), count(distinct dbt_invocation_id) from analytics.fct_sales_lines") == [
        (REFERENCE_LINES + 2, 1)
    ]
