"""Every cleaning rule and every quirk of the reference doc, on workbooks written by openpyxl."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from helpers import HEADER, good_row, write_workbook
from retail_pipeline.adapters.local_store import FolderStore
from retail_pipeline.config import Limits
from retail_pipeline.ingest import ingest_object


def ingest(tmp_path: Path, rows: list[list], limits: Limits = Limits(), **kwargs):
    book = write_workbook(tmp_path / "book.xlsx", rows, **kwargs)
    lake = FolderStore(tmp_path / "lake")
    result = ingest_object(book, "book.xlsx", "file:///book.xlsx", 7, lake, limits)
    sales = pq.read_table(tmp_path / "lake" / "sales").to_pylist() if (tmp_path / "lake" / "sales").exists() else []
    qpath = tmp_path / "lake" / "quarantine"
    quarantine = pq.read_table(qpath).to_pylist() if qpath.exists() else []
    return result, sorted(sales, key=lambda r: r["source_row"]), sorted(quarantine, key=lambda r: r["source_row"])


def test_cell_types_become_typed_columns(tmp_path):
    result, sales, _ = ingest(tmp_path, [good_row(), good_row(invoice="C536379", stock="85123A", qty=-6)])
    assert result.state == "ingested"
    first, second = sales
    assert first["invoice_no"] == "536365" and first["stock_code"] == "85123"  # numeric cells → text codes
    assert second["invoice_no"] == "C536379" and second["stock_code"] == "85123A"
    assert first["quantity"] == 6 and isinstance(first["quantity"], int)
    assert first["unit_price"] == Decimal("2.5500")
    assert first["customer_id"] == "17850"  # no '.0'
    assert first["invoice_datetime"] == datetime(2010, 12, 1, 8, 26)
    assert first["invoice_date"] == date(2010, 12, 1)
    assert first["invoice_month"] == date(2010, 12, 1)
    assert (first["source_sheet"], first["source_row"]) == ("Online Retail", 2)
    assert second["source_row"] == 3
    assert first["batch_id"] == result.batch_id and first["source_generation"] == 7


def test_text_is_trimmed_and_blank_text_is_null(tmp_path):
    _, sales, _ = ingest(
        tmp_path,
        [
            good_row(description="  LANTERN  ", country=" France "),
            good_row(stock=22, description="   "),
            good_row(stock=23, description=None),
        ],
    )
    assert sales[0]["description"] == "LANTERN" and sales[0]["country"] == "France"
    assert sales[1]["description"] is None and sales[2]["description"] is None


def test_customer_id_as_float_or_text_loses_the_point_zero(tmp_path):
    _, sales, _ = ingest(
        tmp_path, [good_row(customer=17850.0), good_row(stock=2, customer="12346.0"), good_row(stock=3, customer=None)]
    )
    assert [r["customer_id"] for r in sales] == ["17850", "12346", None]


def test_numeric_text_is_a_number_and_date_text_is_a_date(tmp_path):
    _result, sales, quarantine = ingest(tmp_path, [good_row(qty="6", price=" 2.55 ", when="2010-12-01 08:26")])
    assert quarantine == []
    assert sales[0]["quantity"] == 6 and sales[0]["unit_price"] == Decimal("2.5500")
    assert sales[0]["invoice_datetime"] == datetime(2010, 12, 1, 8, 26)


@pytest.mark.parametrize(
    "row, reason",
    [
        (good_row(invoice=None), "missing_invoice_no"),
        (good_row(stock=None), "missing_stock_code"),
        (good_row(qty=None), "missing_quantity"),
        (good_row(qty="six"), "bad_quantity"),
        (good_row(qty=1.5), "quantity_not_integer"),
        (good_row(when=None), "missing_invoice_date"),
        (good_row(when="yesterday"), "bad_invoice_date"),
        (good_row(price=None), "missing_unit_price"),
        (good_row(price="cheap"), "bad_unit_price"),
        (good_row(price=1.23456), "unit_price_precision"),
        (good_row(qty=10**9), "quantity_out_of_range"),
        (good_row(description="x" * 5000), "cell_too_long"),
    ],
)
def test_untypable_rows_go_to_quarantine_with_a_reason(tmp_path, row, reason):
    result, sales, quarantine = ingest(tmp_path, [good_row(), row])
    assert len(sales) == 1 and sales[0]["source_row"] == 2
    assert [q["reason"] for q in quarantine] == [reason]
    assert quarantine[0]["source_row"] == 3 and quarantine[0]["detail"]
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (2, 1, 1)


def test_quarantine_keeps_the_raw_text(tmp_path):
    _, _, quarantine = ingest(tmp_path, [good_row(qty="six", customer=17850)])
    q = quarantine[0]
    assert q["raw_quantity"] == "six"
    assert q["raw_invoice_no"] == "536365" and q["raw_customer_id"] == "17850"


def test_exact_duplicates_are_removed_and_counted(tmp_path):
    row = good_row()
    result, sales, _ = ingest(tmp_path, [row, row, good_row(qty=7), row])
    assert (result.rows_read, result.rows_loaded, result.rows_duplicate) == (4, 2, 2)
    assert [r["source_row"] for r in sales] == [2, 4]  # the first of each set is kept


def test_lines_differing_only_by_trailing_space_are_duplicates_after_trimming(tmp_path):
    result, sales, _ = ingest(tmp_path, [good_row(description="LANTERN"), good_row(description="LANTERN ")])
    assert result.rows_duplicate == 1 and len(sales) == 1


@pytest.mark.parametrize(
    "row, line_type",
    [
        (good_row(), "sale"),
        (good_row(invoice="C536379", qty=-1), "cancellation"),
        (good_row(invoice="A563185", stock="B", qty=1, price=11062.06, customer=None), "bad_debt_adjustment"),
        (good_row(invoice="A563186", stock="B", qty=1, price=-11062.06, customer=None), "bad_debt_adjustment"),
        (good_row(stock="POST", price=18.0), "postage"),
        (good_row(stock="DOT", price=100.0), "postage"),
        (good_row(stock="C2", price=50.0), "postage"),
        (good_row(stock="BANK CHARGES", price=15.0), "fee"),
        (good_row(stock="AMAZONFEE", price=5000.0), "fee"),
        (good_row(stock="CRUK", price=10.0), "fee"),
        (good_row(stock="D", qty=-1, price=20.0), "discount"),
        (good_row(stock="M", price=3.0), "non_product"),
        (good_row(stock="m", price=3.0), "non_product"),
        (good_row(stock="S", price=3.0), "non_product"),
        (good_row(stock="PADS", price=0.001), "non_product"),
        (good_row(stock="gift_0001_20", price=16.67), "non_product"),
        (good_row(stock="DCGS0003", price=2.5), "non_product"),
        (good_row(qty=-12, price=0, customer=None, description="damaged"), "stock_adjustment"),
        (good_row(qty=5, price=0, customer=None, description="found"), "stock_adjustment"),
        (good_row(qty=3, price=0), "free_item"),
    ],
)
def test_quirks_are_classified_not_dropped(tmp_path, row, line_type):
    result, sales, quarantine = ingest(tmp_path, [row])
    assert quarantine == [] and result.rows_loaded == 1
    assert sales[0]["line_type"] == line_type


def test_the_80995_pair_is_kept_exactly(tmp_path):
    rows = [
        good_row(invoice=581483, stock=23843, qty=80995, price=2.08, customer=16446),
        good_row(invoice="C581484", stock=23843, qty=-80995, price=2.08, customer=16446),
    ]
    _, sales, _ = ingest(tmp_path, rows)
    assert sum(r["quantity"] * r["unit_price"] for r in sales) == Decimal(0)


def test_partitions_by_invoice_month_and_manifest_last(tmp_path):
    rows = [good_row(when=datetime(2010, 12, 31, 23, 59)), good_row(when=datetime(2011, 1, 1, 0, 0))]
    result, _, _ = ingest(tmp_path, rows)
    assert [p["partition"] for p in result.partitions] == ["2010-12", "2011-01"]
    lake = FolderStore(tmp_path / "lake")
    infos = {i.name: i for i in lake.list()}
    manifest = infos[f"manifests/{result.batch_id}.json"]
    assert all(manifest.generation > i.generation for n, i in infos.items() if n != manifest.name)
    for p in result.partitions:
        meta = infos[p["object"]].metadata
        assert meta["kind"] == "sales" and meta["partition"] == p["partition"] and meta["rows"] == "1"


def test_online_retail_ii_headers_and_every_sheet(tmp_path):
    ii = ["Invoice", "StockCode", "Description", "Quantity", "InvoiceDate", "Price", "Customer ID", "Country"]
    result, sales, _ = ingest(
        tmp_path,
        [good_row()],
        header=ii,
        sheet="Year 2009-2010",
        extra_sheets={"Year 2010-2011": [ii, good_row(stock=2)], "Notes": [["just a note"]]},
    )
    assert result.state == "ingested" and result.sheets == ["Year 2009-2010", "Year 2010-2011"]
    assert {r["source_sheet"] for r in sales} == {"Year 2009-2010", "Year 2010-2011"}


@pytest.mark.parametrize(
    "content, code",
    [
        (b"", "empty_file"),
        (b"InvoiceNo,StockCode\n1,2\n", "not_a_workbook"),
        (b"PK\x03\x04 truncated zip", "corrupt_workbook"),
    ],
)
def test_unreadable_files_are_rejected_with_a_reason(tmp_path, content, code):
    path = tmp_path / "book.xlsx"
    path.write_bytes(content)
    lake = FolderStore(tmp_path / "lake")
    result = ingest_object(path, "book.xlsx", "file:///book.xlsx", 1, lake, Limits())
    assert (result.state, result.error_code) == ("rejected", code)
    assert result.error
    assert [i.name for i in lake.list()] == [f"manifests/{result.batch_id}.json"]


def test_missing_columns_are_named_in_the_rejection(tmp_path):
    book = write_workbook(tmp_path / "b.xlsx", [[1, 2, 3]], header=["InvoiceNo", "StockCode", "Quantity"])
    result = ingest_object(book, "b.xlsx", "file:///b.xlsx", 1, FolderStore(tmp_path / "lake"), Limits())
    assert result.error_code == "missing_columns"
    assert "description" in result.error and "unit_price" in result.error


def test_header_only_is_rejected(tmp_path):
    book = write_workbook(tmp_path / "b.xlsx", [])
    result = ingest_object(book, "b.xlsx", "file:///b.xlsx", 1, FolderStore(tmp_path / "lake"), Limits())
    assert result.error_code == "no_data_rows"


def test_header_list_matches_reference_doc():
    assert HEADER == [
        "InvoiceNo",
        "StockCode",
        "Description",
        "Quantity",
        "InvoiceDate",
        "UnitPrice",
        "CustomerID",
        "Country",
    ]


def test_fully_blank_rows_are_skipped_but_a_lone_bad_cell_is_not(tmp_path):
    def setup_blank_rows(path):
        import openpyxl
        from openpyxl.styles import PatternFill

        wb = openpyxl.load_workbook(path)
        ws = wb.active
        ws.insert_rows(3, amount=2)  # two empty rows between the data rows
        ws.cell(row=3, column=1).fill = PatternFill("solid", fgColor="FFFF00")  # formatted, but no value
        ws.cell(row=7, column=4).value = "abc"  # a row whose only cell is untypable text
        wb.save(path)

    book = write_workbook(tmp_path / "book.xlsx", [good_row(stock=1), good_row(stock=2)])
    setup_blank_rows(book)
    lake = FolderStore(tmp_path / "lake")
    result = ingest_object(book, "book.xlsx", "file:///book.xlsx", 7, lake, Limits())
    quarantine = pq.read_table(tmp_path / "lake" / "quarantine").to_pylist()
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (3, 2, 1)
    assert [(q["source_row"], q["reason"], q["raw_quantity"]) for q in quarantine] == [(7, "missing_invoice_no", "abc")]
    sales = pq.read_table(tmp_path / "lake" / "sales").to_pylist()
    assert sorted(r["source_row"] for r in sales) == [2, 5]
