"""`retail-pipeline run` end to end on the embedded chain, checked against independent computations."""

from __future__ import annotations

import json
import subprocess
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest

from helpers import good_row, run_cli, write_workbook


def cli(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run_cli(home, *args, check=check)


def status(home: Path) -> dict:
    return json.loads(cli(home, "status", "--json").stdout)


def expected_from_openpyxl(path: Path) -> dict:
    """The figures, computed row by row with openpyxl and Decimal (independent of the pipeline's reader)."""
    ws = openpyxl.load_workbook(path, read_only=True).worksheets[0]
    rows = list(ws.iter_rows(min_row=2, values_only=True))

    def text(v):
        if v is None:
            return None
        s = str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)
        s = s.strip()
        return s or None

    distinct = {}
    for inv, code, desc, qty, when, price, cust, country in rows:
        key = (
            text(inv),
            text(code),
            text(desc),
            int(qty),
            when,
            Decimal(str(round(price, 4))),
            text(cust),
            text(country),
        )
        distinct.setdefault(key, None)
    net = sum(k[3] * k[5] for k in distinct)
    return {"read": len(rows), "loaded": len(distinct), "duplicates": len(rows) - len(distinct), "net": net}


def assert_money(text: str, value: Decimal) -> None:
    assert Decimal(text) == value, (text, value)


def test_run_small_workbook_matches_independent_figures_and_is_repeatable(tmp_path, small_workbook):
    home = tmp_path / "h"
    proc = cli(home, "run", str(small_workbook))
    assert "transformed" in proc.stdout and "seconds:" in proc.stdout
    assert "dropped" in proc.stderr  # progress is shown while it works
    expected = expected_from_openpyxl(small_workbook)
    first = status(home)
    (batch,) = first["batches"]
    assert batch["state"] == "transformed"
    assert batch["rows"] == {
        "read": expected["read"],
        "loaded": expected["loaded"],
        "quarantined": 0,
        "duplicates": expected["duplicates"],
    }
    assert first["warehouse"]["fact_rows"] == expected["loaded"]
    assert_money(first["warehouse"]["net_amount"], expected["net"])
    assert first["dbt"]["status"] == "success" and first["dbt"]["tests_failed"] == 0
    assert first["dbt"]["tests_passed"] > 10

    cli(home, "run", str(small_workbook))
    second = status(home)
    assert second["warehouse"] == first["warehouse"]
    assert [b["state"] for b in second["batches"]] == ["superseded", "transformed"]
    assert second["batches"][1]["rows"] == batch["rows"]


def test_untypable_rows_are_quarantined_and_the_rest_loaded(tmp_path):
    rows = [
        good_row(stock=1),
        good_row(stock=2, qty="many"),
        good_row(stock=3),
        good_row(stock=4, price=None),
        good_row(stock=5, when="not a date"),
    ]
    book = write_workbook(tmp_path / "bad_rows.xlsx", rows)
    home = tmp_path / "h"
    cli(home, "run", str(book))
    report = status(home)
    (batch,) = report["batches"]
    assert batch["rows"] == {"read": 5, "loaded": 2, "quarantined": 3, "duplicates": 0}
    assert report["warehouse"]["fact_rows"] == 2
    import duckdb

    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    reasons = con.execute("SELECT source_row, reason FROM raw.quarantine ORDER BY source_row").fetchall()
    con.close()
    assert reasons == [(3, "bad_quantity"), (5, "missing_unit_price"), (6, "bad_invoice_date")]


def test_non_workbook_is_rejected_and_nothing_else_changes(tmp_path, small_workbook):
    home = tmp_path / "h"
    cli(home, "run", str(small_workbook))
    before = status(home)
    junk = tmp_path / "sales.xlsx"
    junk.write_text("InvoiceNo,StockCode\n1,2\n")
    proc = cli(home, "run", str(junk), check=False)
    assert proc.returncode != 0
    assert "not one" in proc.stdout  # the readable reason is in the summary
    after = status(home)
    assert after["warehouse"] == before["warehouse"]
    rejected = [b for b in after["batches"] if b["state"] == "rejected"]
    assert len(rejected) == 1 and rejected[0]["error_code"] == "not_a_workbook"
    assert after["dbt"]["runs"] == before["dbt"]["runs"]
    assert (home / "buckets" / "landing" / "rejected").is_dir()


@pytest.mark.slow
def test_reference_workbook_end_to_end_and_repeatable(reference_home, reference_workbook):
    import duckdb
    import fastexcel

    home = reference_home
    report = status(home)
    (batch,) = report["batches"]
    assert batch["rows"] == {"read": 541_909, "loaded": 536_637, "quarantined": 0, "duplicates": 5_272}
    assert report["warehouse"] == {"fact_rows": 536_637, "net_amount": "22075976.06"}
    assert report["dbt"]["status"] == "success" and report["dbt"]["tests_failed"] == 0

    # independent computation: the sheet read with plain fastexcel, typed and de-duplicated in SQL here
    sheet = (
        fastexcel.read_excel(str(reference_workbook))
        .load_sheet(0, dtypes={"InvoiceNo": "string", "StockCode": "string", "CustomerID": "string"})
        .to_arrow()
    )
    con = duckdb.connect()
    con.register("sheet", sheet)
    distinct, net = con.execute(
        "SELECT count(*), sum(q * p) FROM (SELECT DISTINCT InvoiceNo, StockCode, nullif(trim(Description), '') d, "
        "Quantity::BIGINT q, InvoiceDate, round(UnitPrice, 4)::DECIMAL(18, 4) p, CustomerID, trim(Country) "
        "FROM sheet)"
    ).fetchone()
    assert (sheet.num_rows, distinct) == (541_909, report["warehouse"]["fact_rows"])
    assert Decimal(report["warehouse"]["net_amount"]) == net

    proc = cli(home, "run", str(reference_workbook))
    assert "ingest" in proc.stdout.split("seconds:")[1]  # per-stage seconds are printed
    again = status(home)
    assert again["warehouse"] == report["warehouse"]
    assert again["batches"][-1]["rows"] == batch["rows"] and again["batches"][-1]["state"] == "transformed"
    assert [b["state"] for b in again["batches"]] == ["superseded", "transformed"]
