"""Landing formats beyond the workbook, streaming in bounded batches, and the fast paths of ingest.

The same rows as .xlsx, .csv, .csv.gz and .parquet must give the same lake content and counts;
CSV cells are text and go through the same rules as text cells of a workbook; big inputs are read
in batches and spill to disk; the fast workbook read, the zero-copy month split and the packed-code
deduplication must give exactly what the slow, obvious ways give.
"""

from __future__ import annotations

import csv
import gzip
import random
import subprocess
import sys
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers import HEADER, good_row, write_workbook
from retail_pipeline import excel_reader, partition_buffer, stream_reader
from retail_pipeline.adapters.local_store import FolderStore
from retail_pipeline.config import Limits
from retail_pipeline.dedup import DEDUP_KEYS, first_of_each
from retail_pipeline.ingest import ingest_object
from retail_pipeline.reader import RejectedInput, check_object_size, read_source
from retail_pipeline.sample import write_sample

#: lineage columns that name the source object; everything else must match across formats
SOURCE_NAMING = ["source_uri", "source_generation", "batch_id", "source_sheet"]


def ingest(path: Path, lake_dir: Path, limits: Limits = Limits()):
    lake = FolderStore(lake_dir)
    result = ingest_object(path, path.name, path.as_uri(), 1, lake, limits)
    return result, lake_content(lake_dir)


def lake_content(lake_dir: Path) -> dict[str, list[dict]]:
    """Every sales partition and the quarantine, rows in stored order, minus the source-naming columns."""
    out = {}
    for part in sorted((lake_dir / "sales").glob("month=*/*.parquet")):
        out[part.parent.name] = pq.read_table(part).drop_columns(SOURCE_NAMING).to_pylist()
    for q in (lake_dir / "quarantine").glob("*.parquet"):
        out["quarantine"] = pq.read_table(q).drop_columns(SOURCE_NAMING).to_pylist()
    return out


def counts(result) -> tuple:
    return (result.state, result.rows_read, result.rows_loaded, result.rows_quarantined, result.rows_duplicate)


@pytest.fixture(scope="module")
def sample_files(tmp_path_factory) -> dict[str, Path]:
    """The same 4,000 generated rows as xlsx, csv, csv.gz and parquet."""
    folder = tmp_path_factory.mktemp("formats")
    files = {}
    for fmt in ("xlsx", "csv", "csv.gz", "parquet"):
        files[fmt] = folder / f"sample.{fmt}"
        write_sample(files[fmt], rows=4000, seed=11, fmt=fmt)
    return files


def test_same_rows_in_every_format_give_the_same_lake(sample_files, tmp_path):
    results = {fmt: ingest(path, tmp_path / fmt.replace(".", "_")) for fmt, path in sample_files.items()}
    xlsx_result, xlsx_lake = results["xlsx"]
    assert xlsx_result.state == "ingested" and xlsx_result.rows_read == 4000
    assert xlsx_result.rows_read == xlsx_result.rows_loaded + xlsx_result.rows_quarantined + xlsx_result.rows_duplicate
    assert xlsx_result.rows_duplicate > 0  # the generator writes exact duplicates
    for fmt, (result, lake) in results.items():
        assert counts(result) == counts(xlsx_result), fmt
        assert lake == xlsx_lake, fmt


def test_csv_text_cells_follow_the_workbook_rules(tmp_path):
    rows = [
        ["536365", "85123A", "WHITE HANGING HEART", " 6 ", "2010-12-01 08:26:00", "2.55", "17850.0", "United Kingdom"],
        ["536366", "22633", "N/A", "6", "01/12/2010 08:28", " 1.85 ", "", "France"],
        ["536367", "22633", "X", "six", "2010-12-01 08:30:00", "1.00", "12583", "France"],
        ["536368", "22633", "X", "2", "yesterday", "1.00", "12583", "France"],
        ["536369", "22633", "X", "2", "2010-12-01 08:30:00", "cheap", "12583", "France"],
        ["", "22633", "X", "2", "2010-12-01 08:30:00", "1.00", "12583", "France"],
        ["536370", "22633", "X", "1.5", "2010-12-01 08:30:00", "1.00", "12583", "France"],
    ]
    path = tmp_path / "lines.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        w.writerows(rows)
    result, _ = ingest(path, tmp_path / "lake")
    assert counts(result) == ("ingested", 7, 2, 5, 0)
    sales = pq.read_table(tmp_path / "lake" / "sales").to_pylist()
    sales.sort(key=lambda r: r["source_row"])
    assert [r["quantity"] for r in sales] == [6, 6]  # numeric text is a number
    assert [r["unit_price"] for r in sales] == [Decimal("2.5500"), Decimal("1.8500")]
    assert [r["customer_id"] for r in sales] == ["17850", None]  # '.0' dropped, blank is null
    assert sales[1]["invoice_datetime"] == datetime(2010, 12, 1, 8, 28)  # UK day-first text date
    assert sales[1]["description"] == "N/A"  # text that looks like a null marker stays text
    quarantine = pq.read_table(tmp_path / "lake" / "quarantine").to_pylist()
    by_row = {q["source_row"]: q for q in quarantine}
    assert {row: q["reason"] for row, q in by_row.items()} == {
        4: "bad_quantity",
        5: "bad_invoice_date",
        6: "bad_unit_price",
        7: "missing_invoice_no",
        8: "quantity_not_integer",
    }
    assert by_row[4]["raw_quantity"] == "six" and by_row[5]["raw_invoice_date"] == "yesterday"
    assert by_row[6]["raw_unit_price"] == "cheap"


def test_csv_with_odd_headers_and_a_bom(tmp_path):
    path = tmp_path / "odd.csv"
    header = [
        "Invoice",
        "StockCode",
        "Description",
        "Quantity",
        "InvoiceDate",
        "Price",
        "Customer ID",
        "Country",
        "Notes",
        "Notes",
    ]
    with open(path, "w", newline="", encoding="utf-8-sig") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerow(
            ["536365", "85123A", 'A "QUOTED", LINE', "6", "2010-12-01 08:26:00", "2.55", "17850", "France", "x", "y"]
        )
    result, _ = ingest(path, tmp_path / "lake")
    assert counts(result) == ("ingested", 1, 1, 0, 0)
    (row,) = pq.read_table(tmp_path / "lake" / "sales").to_pylist()
    assert row["invoice_no"] == "536365" and row["description"] == 'A "QUOTED", LINE'


def test_csv_without_the_columns_is_rejected(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n")
    result, _ = ingest(path, tmp_path / "lake")
    assert (result.state, result.error_code) == ("rejected", "missing_columns")


def test_csv_and_parquet_are_streamed_in_batches(sample_files, monkeypatch):
    monkeypatch.setattr(stream_reader, "CSV_BLOCK_BYTES", 16 * 1024)
    monkeypatch.setattr(stream_reader, "CSV_CHUNK_ROWS", 300)
    monkeypatch.setattr(stream_reader, "PARQUET_BATCH_ROWS", 700)
    for fmt in ("csv", "csv.gz", "parquet"):
        chunks = list(read_source(sample_files[fmt], sample_files[fmt].name, Limits()))
        assert len(chunks) > 4, fmt
        assert sum(c.table.num_rows for c in chunks) == 4000
        assert all(c.table.num_rows <= 700 for c in chunks) or fmt != "parquet"
        # source rows continue from chunk to chunk (the header is row 1)
        expected_first = 2
        for c in chunks:
            assert c.first_row == expected_first
            expected_first += c.table.num_rows


def test_small_batches_and_spilling_give_the_same_lake(sample_files, tmp_path, monkeypatch):
    expected_result, expected = ingest(sample_files["csv"], tmp_path / "whole")
    monkeypatch.setattr(stream_reader, "CSV_BLOCK_BYTES", 16 * 1024)
    monkeypatch.setattr(stream_reader, "CSV_CHUNK_ROWS", 300)
    monkeypatch.setattr(partition_buffer, "SPILL_ROWS", 500)
    spilled = []
    original_spill = partition_buffer.PartitionBuffer.spill

    def spill(self):
        spilled.append(self.buffered)
        original_spill(self)

    monkeypatch.setattr(partition_buffer.PartitionBuffer, "spill", spill)
    result, lake = ingest(sample_files["csv"], tmp_path / "batched")
    assert spilled, "the buffer never spilled to disk"
    assert counts(result) == counts(expected_result)
    assert lake == expected  # duplicates across batch boundaries are still found, order kept


def test_rows_out_of_month_order_are_partitioned_like_sorted_ones(tmp_path, monkeypatch):
    months = [datetime(2011, m, 3, 10, 0) for m in (1, 2, 3)]
    rows = [good_row(stock=i, when=months[i % 3]) for i in range(30)] + [good_row(stock=0, when=months[0])]
    book = write_workbook(tmp_path / "mixed.xlsx", rows)
    result, runs_lake = ingest(book, tmp_path / "runs")
    monkeypatch.setattr(partition_buffer, "MAX_MONTH_RUNS", 1)  # force the sort path
    sorted_result, sorted_lake = ingest(book, tmp_path / "sorted")
    assert counts(result) == counts(sorted_result) == ("ingested", 31, 30, 0, 1)
    assert runs_lake == sorted_lake
    assert [r["stock_code"] for r in runs_lake["month=2011-01"]] == [str(i) for i in range(0, 30, 3)]
    assert [r["source_row"] for r in runs_lake["month=2011-02"]] == list(range(3, 32, 3))


def test_a_clean_sheet_is_read_once(tmp_path, monkeypatch):
    book = write_workbook(tmp_path / "clean.xlsx", [good_row(), good_row(stock=2)])

    def no_second_read(*args, **kwargs):
        raise AssertionError("a sheet without quarantined rows was read twice")

    monkeypatch.setattr(excel_reader, "read_sheet_exact", no_second_read)
    result, _ = ingest(book, tmp_path / "lake")
    assert counts(result) == ("ingested", 2, 2, 0, 0)


def test_quarantined_rows_keep_the_text_of_error_cells(tmp_path):
    """The fast read turns an Excel error cell into a null; the re-read keeps its text."""
    path = tmp_path / "errors.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(HEADER)
    ws.append(good_row())
    ws.append(good_row(price=1.23456))  # quarantined: more than 4 decimals
    ws.append(good_row(stock=3))
    ws["C3"] = "#DIV/0!"
    ws["C3"].data_type = "e"
    wb.save(path)
    result, _ = ingest(path, tmp_path / "lake")
    assert counts(result) == ("ingested", 3, 2, 1, 0)
    (q,) = pq.read_table(tmp_path / "lake" / "quarantine").to_pylist()
    assert q["reason"] == "unit_price_precision" and q["source_row"] == 3
    assert q["raw_description"] is not None and "div" in q["raw_description"].lower()


def _first_of_each_by_dict(rows: list[tuple]) -> list[int]:
    seen, keep = set(), []
    for i, row in enumerate(rows):
        if row not in seen:
            seen.add(row)
            keep.append(i)
    return keep


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_packed_code_deduplication_matches_a_plain_set(seed):
    rng = random.Random(seed)
    n = 3000
    columns = {
        "invoice_no": [rng.choice(["1", "2", "3", None]) for _ in range(n)],
        "stock_code": [rng.choice(["A", "B"]) for _ in range(n)],
        "description": [rng.choice(["x", "y", None]) for _ in range(n)],
        "quantity": [rng.randint(-2, 2) for _ in range(n)],
        "invoice_datetime": [datetime(2011, 1, 1, rng.randint(0, 2)) for _ in range(n)],
        "unit_price": [Decimal(rng.choice(["1.0000", "2.5000", "0.0000"])) for _ in range(n)],
        "customer_id": [rng.choice(["17850", None]) for _ in range(n)],
        # many distinct values: forces more than one 64-bit word of packed codes
        "country": [str(rng.randint(0, 2**20)) if rng.random() < 0.5 else "UK" for _ in range(n)],
    }
    table = pa.table(columns)
    rows = list(zip(*(columns[k] for k in DEDUP_KEYS)))
    expected = _first_of_each_by_dict(rows)
    got = first_of_each(table, DEDUP_KEYS)
    assert (list(range(n)) if got is None else got.tolist()) == expected
    assert len(expected) < n


def test_first_of_each_without_duplicates_is_none():
    table = pa.table({k: [str(i) for i in range(5)] for k in ["a", "b"]})
    assert first_of_each(table, ["a", "b"]) is None


def test_first_of_each_on_text_keys_and_keys_with_nulls():
    """No null-free number column to pre-select candidates: every row is compared exactly."""
    rows = [("a", 1), ("b", None), ("a", 1), ("b", None), ("a", 2), ("c", 1), ("b", 1)]
    table = pa.table({"t": [r[0] for r in rows], "q": pa.array([r[1] for r in rows], pa.int64())})
    assert first_of_each(table, ["t", "q"]).tolist() == _first_of_each_by_dict(rows) == [0, 1, 4, 5, 6]


def test_the_ingest_path_stays_lean(sample_files, tmp_path):
    """No pandas, Arrow datasets/Acero, DuckDB or polars in an ingest process: each costs
    tenths of a second and tens of MB that the benchmark target cannot afford."""
    code = (
        "import sys; from pathlib import Path\n"
        "from retail_pipeline.ingest import ingest_object\n"
        "from retail_pipeline.adapters.local_store import FolderStore\n"
        "from retail_pipeline.config import Limits\n"
        "for i, p in enumerate(sys.argv[2:]):\n"
        "    lake = FolderStore(sys.argv[1] + str(i))\n"
        "    r = ingest_object(Path(p), Path(p).name, 'file:///x' + p, 1, lake, Limits())\n"
        "    assert r.state == 'ingested', r.error\n"
        "heavy = [m for m in ('pandas', 'pyarrow.dataset', 'pyarrow.acero', 'duckdb', 'polars') if m in sys.modules]\n"
        "print(','.join(heavy) or 'none')\n"
    )
    errors_book = write_workbook(tmp_path / "quarantine.xlsx", [good_row(), good_row(qty="six")])
    files = [str(sample_files[f]) for f in ("xlsx", "csv", "csv.gz", "parquet")] + [str(errors_book)]
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "lake"), *files], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "none"


def test_a_gzip_csv_that_is_cut_short_is_rejected(sample_files, tmp_path):
    data = gzip.decompress(sample_files["csv.gz"].read_bytes())
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(gzip.compress(data)[:-40])
    result, _ = ingest(path, tmp_path / "lake")
    assert (result.state, result.error_code) == ("rejected", "unreadable_csv")


def test_the_object_size_limit_is_one_rule_with_one_message(tmp_path):
    """reader.check_object_size decides it for the ingest (read_source) and for the stage that
    rejects a landing object before downloading it."""
    limits = Limits(max_object_bytes=1000)
    check_object_size(1000, limits)  # at the limit: accepted
    with pytest.raises(RejectedInput, match=r"^object is 1,001 bytes; the limit is 1,000$") as raised:
        check_object_size(1001, limits)
    assert raised.value.code == "object_too_large"
    path = tmp_path / "big.csv"
    path.write_text("x" * 1001)
    with pytest.raises(RejectedInput, match=r"^object is 1,001 bytes; the limit is 1,000$"):
        list(read_source(path, path.name, limits))
