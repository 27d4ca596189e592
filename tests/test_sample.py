"""The sample generator: deterministic, with the real file's cell types and quirks (read back with openpyxl)."""

from __future__ import annotations

import hashlib
import warnings
from datetime import datetime

import openpyxl
import pytest

from retail_pipeline.sample import write_sample


def sheet_rows(path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a well-formed workbook: openpyxl has nothing to complain about
        wb = openpyxl.load_workbook(path, read_only=True)
    try:
        return {ws.title: list(ws.iter_rows(values_only=True)) for ws in wb.worksheets}
    finally:
        wb.close()  # read-only workbooks keep their file open until closed


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    a, b, c = tmp_path / "a.xlsx", tmp_path / "b.xlsx", tmp_path / "c.xlsx"
    write_sample(a, rows=3000, seed=1)
    write_sample(b, rows=3000, seed=1)
    write_sample(c, rows=3000, seed=2)
    assert sheet_rows(a) == sheet_rows(b)
    assert sheet_rows(a) != sheet_rows(c)
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()


def test_cell_types_and_quirks_like_the_real_file(tmp_path):
    path = tmp_path / "s.xlsx"
    write_sample(path, rows=20_000, seed=3)
    (rows,) = sheet_rows(path).values()
    header, data = rows[0], rows[1:]
    assert header == (
        "InvoiceNo",
        "StockCode",
        "Description",
        "Quantity",
        "InvoiceDate",
        "UnitPrice",
        "CustomerID",
        "Country",
    )
    assert len(data) == 20_000
    invoices = [r[0] for r in data]
    assert any(isinstance(v, int) for v in invoices)  # plain invoices are numbers
    assert any(isinstance(v, str) and v.startswith("C") for v in invoices)  # cancellations are text
    assert sum(isinstance(v, str) and v.startswith("A") for v in invoices) == 3  # bad-debt adjustments
    codes = [r[1] for r in data]
    assert any(isinstance(v, int) for v in codes) and any(
        isinstance(v, str) and v[-1].isalpha() and v[:5].isdigit() for v in codes
    )
    assert {"POST", "DOT", "M"} <= {v for v in codes if isinstance(v, str)}
    assert all(isinstance(r[4], datetime) for r in data)
    assert any(r[6] is None for r in data) and any(isinstance(r[6], int) for r in data)
    assert any(isinstance(r[2], str) and r[2] != r[2].rstrip() for r in data)  # trailing spaces
    assert any(r[3] < 0 and r[5] == 0 and r[6] is None for r in data)  # stock adjustments
    assert (80995 in [r[3] for r in data]) and (-80995 in [r[3] for r in data])
    duplicates = len(data) - len(set(data))
    assert 0.005 * len(data) < duplicates < 0.02 * len(data)
    uk = sum(r[7] == "United Kingdom" for r in data) / len(data)
    assert 0.85 < uk < 0.97


def test_online_retail_ii_variant_has_two_sheets_and_its_headers(tmp_path):
    path = tmp_path / "ii.xlsx"
    write_sample(path, rows=2000, variant="online-retail-ii", seed=0)
    sheets = sheet_rows(path)
    assert list(sheets) == ["Year 2009-2010", "Year 2010-2011"]
    for rows in sheets.values():
        assert rows[0] == (
            "Invoice",
            "StockCode",
            "Description",
            "Quantity",
            "InvoiceDate",
            "Price",
            "Customer ID",
            "Country",
        )
    assert sum(len(r) - 1 for r in sheets.values()) == 2000
    assert min(r[4] for r in sheets["Year 2009-2010"][1:]).year == 2009


@pytest.mark.parametrize("fmt", ["csv", "csv.gz", "parquet"])
def test_other_formats_hold_the_same_rows(tmp_path, fmt):
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    path = tmp_path / f"s.{fmt}"
    write_sample(path, rows=1500, seed=4)
    table = pq.read_table(path) if fmt == "parquet" else pacsv.read_csv(path)
    assert table.num_rows == 1500
    assert table.column_names[:2] == ["InvoiceNo", "StockCode"]
