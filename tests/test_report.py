"""The Excel report (`retail-pipeline report`): opened with openpyxl and checked against the marts
queried here; its summary rendered by LibreOffice (headless, Debian's package) to PDF and PNG to see
the charts drawn with their data; streamed sheets; the bucket variant; the BigQuery chain.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import zipfile
from decimal import Decimal
from pathlib import Path

import numpy as np
import openpyxl
import pytest

from helpers import run_cli
from report_checks import MONTH_MEASURES, exact

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
SOFFICE = shutil.which("soffice")
PDFTOPPM = shutil.which("pdftoppm")
PDFTOTEXT = shutil.which("pdftotext")
MONTH, PREVIOUS = "2011-11", "2011-10"
DAY_MARTS = ("mart_revenue_daily", "mart_invoices", "mart_product_sales_daily")


def rows_of(ws) -> list[tuple]:
    return [tuple(c.value for c in row) for row in ws.iter_rows()]


def summary_table(ws, caption: str) -> list[tuple]:
    """The rows under a caption on the summary sheet (after its header row, up to the blank row)."""
    rows = rows_of(ws)
    start = next(i for i, r in enumerate(rows) if r[0] == caption) + 2
    out = []
    for row in rows[start:]:
        if row[0] is None:
            break
        out.append(row)
    return out


def mart_names() -> list[str]:
    import yaml

    return sorted(
        m["name"]
        for p in (REPO / "dbt" / "models" / "marts").glob("*.yml")
        for m in yaml.safe_load(p.read_text())["models"]
    )


@pytest.fixture(scope="module")
def reference_report(reference_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "november.xlsx"
    proc = run_cli(reference_home, "report", str(out), "--month", MONTH)
    assert f"wrote {out} ({MONTH} against {PREVIOUS}" in proc.stdout
    return out


@pytest.fixture(scope="module")
def book(reference_report: Path):
    wb = openpyxl.load_workbook(reference_report)
    yield wb
    wb.close()


@pytest.fixture(scope="module")
def db(reference_home: Path, duckdb_sql):
    return lambda sql, *params: duckdb_sql(reference_home / "warehouse.duckdb", sql, *params)


# ---------------------------------------------------------------- the workbook


@pytest.mark.slow
def test_sheets_are_summary_about_and_one_per_mart(book):
    assert book.sheetnames[:2] == ["Summary", "About"]
    assert sorted(book.sheetnames[2:]) == mart_names()
    about = {r[0]: r for r in rows_of(book["About"])[1:]}
    assert set(about) == set(book.sheetnames[2:])
    for name in book.sheetnames[2:]:
        assert about[name][1] == book[name].max_row - 1, name


@pytest.mark.slow
def test_summary_figures_equal_the_monthly_mart(book, db):
    ws = book["Summary"]
    assert ws["A1"].value == "Online Retail: Nov 2011"
    rows = rows_of(ws)
    header = next(i for i, r in enumerate(rows) if r[0] == "Measure")
    assert rows[header][1:5] == ("Nov 2011", "Oct 2011", "Change", "Change %")
    shown = {r[0]: r for r in rows[header + 1 : header + 1 + len(MONTH_MEASURES)]}
    assert list(shown) == list(MONTH_MEASURES)
    columns = ", ".join(MONTH_MEASURES.values())
    (now,) = db(f"select {columns} from mart_revenue_monthly where invoice_month = date '{MONTH}-01'")
    (then,) = db(f"select {columns} from mart_revenue_monthly where invoice_month = date '{PREVIOUS}-01'")
    for (label, _column), a, b in zip(MONTH_MEASURES.items(), now, then):
        assert exact(shown[label][1]) == Decimal(str(a)), (label, shown[label][1], a)
        assert exact(shown[label][2]) == Decimal(str(b)), (label, shown[label][2], b)
    net = shown["Net revenue"]
    assert exact(net[3]) == now[0] - then[0]
    assert abs(net[4] - float(now[0] / then[0] - 1)) < 1e-12
    # formats: pounds, a percentage, thousands
    cells = {c.value: c for c in ws["A"]}
    for label, fmt in (
        ("Net revenue", "£"),
        ("Average order value", "£"),
        ("Cancellation rate", "%"),
        ("Orders", "#,##0"),
    ):
        assert fmt in ws.cell(cells[label].row, 2).number_format, label


@pytest.mark.slow
def test_summary_countries_and_segments_equal_the_marts(book, db):
    ws = book["Summary"]
    countries = summary_table(ws, "Net revenue by country, Nov 2011")
    expected = db(
        f"select country, sum(net_revenue) as net from mart_invoices where invoice_month = date '{MONTH}-01' "
        "group by country order by net desc, country"
    )
    assert [r[0] for r in countries[:10]] == [c for c, _ in expected[:10]]
    assert [exact(r[1]) for r in countries[:10]] == [n for _, n in expected[:10]]
    assert countries[-1][0] == "Other countries"
    ((month_net,),) = db(f"select net_revenue from mart_revenue_monthly where invoice_month = date '{MONTH}-01'")
    assert sum(exact(r[1]) for r in countries) == month_net
    ((uk_orders, uk_customers),) = db(
        "select count(distinct invoice_no), count(distinct customer_id) from mart_invoices "
        f"where invoice_month = date '{MONTH}-01' and is_order and country = 'United Kingdom'"
    )
    assert countries[0][:1] == ("United Kingdom",) and countries[0][2:4] == (uk_orders, uk_customers)
    segments = summary_table(ws, "Customers by RFM segment (all dates)")
    expected = {
        s: (n, v)
        for s, n, v in db("select segment, count(*), sum(net_revenue) from mart_customer_rfm group by segment")
    }
    assert {r[0]: (r[1], exact(r[2])) for r in segments} == expected


@pytest.mark.slow
def test_mart_sheets_hold_the_marts_with_formats_filters_and_frozen_headers(book, db):
    for name in mart_names():
        ws = book[name]
        header = [c.value for c in ws[1]]
        columns = [
            r[0]
            for r in db(
                "select column_name from information_schema.columns where table_schema = "
                "'analytics' and table_name = ? order by ordinal_position",
                name,
            )
        ]
        assert header == columns, name
        where = (
            f" where invoice_date >= date '{MONTH}-01' and invoice_date < date '2011-12-01'"
            if name in DAY_MARTS
            else f" where invoice_month <= date '{MONTH}-01'"
            if name == "mart_revenue_monthly"
            else ""
        )
        ((count,),) = db(f"select count(*) from {name}{where}")
        assert ws.max_row - 1 == count > 0, name
        assert ws.freeze_panes == "A2", name
        assert ws.auto_filter.ref == f"A1:{openpyxl.utils.get_column_letter(len(header))}{count + 1}", name
        assert all(
            ws.column_dimensions[openpyxl.utils.get_column_letter(i)].width >= 8 for i in range(1, len(header) + 1)
        ), name
        assert all(ws.cell(1, i).font.b for i in range(1, len(header) + 1)), name
        assert ws.cell(1, 1).comment is not None and ws.cell(1, 1).comment.text, name
        for i, column in enumerate(header, 1):
            fmt = ws.cell(2, i).number_format
            if column in ("net_revenue", "gross_sales", "unit_price", "average_order_value"):
                assert fmt.startswith('"£"'), (name, column, fmt)
            if column.endswith("_rate") or column.startswith("share_"):
                assert fmt.endswith("%"), (name, column, fmt)
    # a sheet's money, summed, equals the mart
    daily = book["mart_revenue_daily"]
    col = [c.value for c in daily[1]].index("net_revenue") + 1
    ((net,),) = db(f"select net_revenue from mart_revenue_monthly where invoice_month = date '{MONTH}-01'")
    assert sum(exact(daily.cell(r, col).value) for r in range(2, daily.max_row + 1)) == net


def chart_refs(path: Path) -> list[dict]:
    """Each chart of the workbook: its kind, and the cell ranges of its values and categories."""
    import xml.etree.ElementTree as ET

    ns = {"c": "http://schemas.openxmlformats.org/drawingml/2006/chart"}
    out = []
    with zipfile.ZipFile(path) as z:
        for name in sorted(n for n in z.namelist() if re.fullmatch(r"xl/charts/chart\d+\.xml", n)):
            root = ET.fromstring(z.read(name))
            plot = root.find("c:chart/c:plotArea", ns)
            kinds = [child.tag.split("}")[1] for child in plot if child.tag.endswith("Chart")]
            title = root.find("c:chart/c:title", ns)
            out.append(
                {
                    "kinds": kinds,
                    "title": "".join(
                        t.text or "" for t in title.iter("{http://schemas.openxmlformats.org/drawingml/2006/main}t")
                    ),
                    "values": [f.text for f in plot.findall(".//c:ser/c:val//c:f", ns)],
                    "categories": [f.text for f in plot.findall(".//c:ser/c:cat//c:f", ns)],
                }
            )
    return out


def cells(book, ref: str) -> list:
    """The values of a one-column range like 'Summary'!$A$16:$A$26."""
    sheet, cells_ref = ref.rsplit("!", 1)
    return [row[0].value for row in book[sheet.strip("'")][cells_ref.replace("$", "")]]


@pytest.mark.slow
def test_three_native_charts_on_the_mart_data(reference_report: Path, book):
    charts = chart_refs(reference_report)
    assert [c["kinds"] for c in charts] == [["lineChart"], ["barChart"], ["barChart"]]
    line, countries, segments = charts
    assert line["title"] == "Net revenue by month"
    monthly = book["mart_revenue_monthly"]
    header = [c.value for c in monthly[1]]
    net, month = (openpyxl.utils.get_column_letter(header.index(c) + 1) for c in ("net_revenue", "invoice_month"))
    assert line["values"] == [f"'mart_revenue_monthly'!${net}$2:${net}$13"]
    assert line["categories"] == [f"'mart_revenue_monthly'!${month}$2:${month}$13"]
    assert cells(book, line["categories"][0])[-1].strftime("%Y-%m") == MONTH
    table = summary_table(book["Summary"], "Net revenue by country, Nov 2011")
    assert cells(book, countries["categories"][0]) == [r[0] for r in table]
    assert cells(book, countries["values"][0]) == [r[1] for r in table]
    table = summary_table(book["Summary"], "Customers by RFM segment (all dates)")
    assert segments["title"] == "Customers by RFM segment"
    assert cells(book, segments["categories"][0]) == [r[0] for r in table]
    assert cells(book, segments["values"][0]) == [r[1] for r in table]


@pytest.fixture(scope="module")
def summary_render(reference_report: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Page 1 (the summary sheet) as LibreOffice prints it: PDF text and the pixels of a 70 dpi render."""
    missing = [
        tool
        for tool, path in (
            ("soffice (Debian libreoffice-calc)", SOFFICE),
            ("pdftoppm/pdftotext (Debian poppler-utils)", PDFTOPPM and PDFTOTEXT),
        )
        if not path
    ]
    if missing:
        pytest.skip("not installed: " + ", ".join(missing))
    folder = tmp_path_factory.mktemp("render")
    subprocess.run(
        [
            SOFFICE,
            f"-env:UserInstallation={(folder / 'profile').as_uri()}",
            "--headless",
            "--convert-to",
            'pdf:calc_pdf_Export:{"PageRange":{"type":"string","value":"1"}}',
            "--outdir",
            str(folder),
            str(reference_report),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    pdf = folder / (reference_report.stem + ".pdf")
    text = subprocess.run([PDFTOTEXT, "-layout", str(pdf), "-"], check=True, capture_output=True, text=True).stdout
    subprocess.run([PDFTOPPM, "-r", "70", "-singlefile", str(pdf), str(folder / "page")], check=True, timeout=120)
    subprocess.run(
        [PDFTOPPM, "-r", "110", "-png", "-singlefile", str(pdf), str(folder / "page")], check=True, timeout=120
    )
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(folder / "page.png", ARTIFACTS / "report-summary.png")
    magic, size, _, pixels = (folder / "page.ppm").read_bytes().split(b"\n", 3)
    assert magic == b"P6"
    width, height = map(int, size.split())
    image = np.frombuffer(pixels, np.uint8).reshape(height, width, 3).astype(int)
    return {"text": text, "image": image}


@pytest.mark.slow
def test_libreoffice_draws_the_charts_with_their_data(summary_render: dict):
    text = summary_render["text"]
    for title in ("Net revenue by month", "Net revenue by country, Nov 2011", "Customers by RFM segment"):
        assert title in text
    # category labels that only a chart prints: the line chart's twelve months along its axis
    assert re.search(r"Dec\s+Jan\s+Feb\s+Mar\s+Apr\s+May\s+Jun.*Aug\s+Sep\s+Oct\s+Nov", text), text
    # bar categories appear twice: in the summary's table and on the chart's axis
    assert text.count("United Kingdom") >= 2 and text.count("Champions") >= 2
    image = summary_render["image"]
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    ink = (b > r + 60) & (b > g + 20)  # the series' blue: the tables are black, grey or red
    width = image.shape[1]
    # the tables fill the left of the page and the charts the right; the page is scaled to fit its
    # widest line (the subtitle names the warehouse), so the border moves: the left 40% is tables only
    assert ink[:, : width * 2 // 5].sum() == 0
    rows = np.where(ink.any(axis=1))[0]
    assert len(rows) > 0, "no chart series drawn"
    third = (rows.max() - rows.min()) / 3
    for k in range(3):  # three charts stacked: each band has series ink
        band = ink[int(rows.min() + k * third) : int(rows.min() + (k + 1) * third) + 1]
        assert band.sum() > 100, (k, band.sum())


# ---------------------------------------------------------------- streaming, buckets, errors


def test_lines_sheet_streams_and_continues_past_the_row_limit(
    small_home: Path, tmp_path: Path, monkeypatch, duckdb_sql
):
    """With the row limit lowered to 1,001, the fact's lines continue over sheets lines, lines (2), ..."""
    from retail_pipeline.config import Settings
    from retail_pipeline.report import sheets, write_report

    monkeypatch.setattr(sheets, "EXCEL_MAX_ROWS", 1001)
    result = write_report(tmp_path / "all.xlsx", lines="all", settings=Settings.from_env(small_home))
    ((total, amount),) = duckdb_sql(
        small_home / "warehouse.duckdb", "select count(*), sum(amount) from fct_sales_lines"
    )
    assert result.lines == total > 2000
    wb = openpyxl.load_workbook(tmp_path / "all.xlsx", read_only=True)
    parts = [n for n in wb.sheetnames if n == "lines" or n.startswith("lines (")]
    assert parts == ["lines"] + [f"lines ({i})" for i in range(2, len(parts) + 1)] and len(parts) == -(-total // 1000)
    seen, summed = 0, Decimal(0)
    for name in parts:
        rows = list(wb[name].iter_rows(values_only=True))
        assert rows[0][:3] == ("invoice_no", "invoice_datetime", "stock_code")
        seen += len(rows) - 1
        summed += sum(exact(r[6]) for r in rows[1:])
    wb.close()
    assert seen == total and summed == amount


def test_report_goes_into_a_bucket(small_home: Path, tmp_path: Path):
    from retail_pipeline.adapters import open_store
    from retail_pipeline.config import Settings
    from retail_pipeline.report import write_report_to_store

    settings = Settings.from_env(small_home)
    store = open_store(str(tmp_path / "reports-bucket"), settings)
    info = write_report_to_store(store, month="2011-11", settings=settings)
    assert info.name == "reports/online-retail-2011-11.xlsx" and info.size > 5000
    local = store.download(info.name, tmp_path)
    wb = openpyxl.load_workbook(local, read_only=True)
    assert wb["Summary"]["A1"].value == "Online Retail: Nov 2011"
    wb.close()


def test_cli_errors_are_clean(small_home: Path, tmp_path: Path):
    no_month = run_cli(small_home, "report", str(tmp_path / "x.xlsx"), "--month", "2030-01", check=False)
    assert no_month.returncode == 1 and "Traceback" not in no_month.stderr
    assert "no data for 2030-01: the months with data are 2010-12 to 2011-12" in no_month.stderr
    bad = run_cli(small_home, "report", str(tmp_path / "x.xlsx"), "--month", "Nov", check=False)
    assert bad.returncode == 1 and "YYYY-MM" in bad.stderr and "Traceback" not in bad.stderr
    empty = run_cli(tmp_path / "empty-home", "report", str(tmp_path / "x.xlsx"), check=False)
    assert empty.returncode == 1 and "retail-pipeline run" in empty.stderr and "Traceback" not in empty.stderr
    assert not (tmp_path / "x.xlsx").exists()


# ---------------------------------------------------------------- BigQuery (the emulator chain)


@pytest.mark.emulator
def test_report_from_bigquery_into_cloud_storage_equals_duckdbs(
    emulator_run, small_home: Path, tmp_path: Path, monkeypatch
):
    """The emulator chain's marts → the report → the GCS emulator; its summary equals the report of
    the same workbook on DuckDB, and the CLI on the emulator home writes the same."""
    from retail_pipeline.adapters import open_store
    from retail_pipeline.config import Settings
    from retail_pipeline.report import write_report, write_report_to_store

    for key, value in emulator_run.env.items():
        monkeypatch.setenv(key, value)
    store = open_store(emulator_run.settings.lake, emulator_run.settings)
    info = write_report_to_store(store, "reports/test.xlsx", settings=emulator_run.settings)
    from_bigquery = store.download(info.name, tmp_path)
    write_report(tmp_path / "duckdb.xlsx", settings=Settings.from_env(small_home))
    proc = run_cli(emulator_run.home, "report", str(tmp_path / "cli.xlsx"))
    assert "wrote" in proc.stdout
    books = [
        openpyxl.load_workbook(p, read_only=True)
        for p in (from_bigquery, tmp_path / "duckdb.xlsx", tmp_path / "cli.xlsx")
    ]
    summaries = [[row for row in wb["Summary"].iter_rows(min_row=3, values_only=True)] for wb in books]
    assert summaries[0] == summaries[1] == summaries[2]
    assert any(r and r[0] == "Net revenue" and r[1] for r in summaries[0])
    for wb in books:
        wb.close()
