"""Small builders used by several test files."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import openpyxl

HEADER = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"]


def write_workbook(
    path: Path,
    rows: list[list],
    header: list[str] = HEADER,
    sheet: str = "Online Retail",
    extra_sheets: dict[str, list[list]] | None = None,
) -> Path:
    """An xlsx written with openpyxl (not the project's own writer), cell types as given."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = sheet
    ws.append(header)
    for row in rows:
        ws.append(row)
    for name, sheet_rows in (extra_sheets or {}).items():
        other = wb.create_sheet(name)
        for row in sheet_rows:
            other.append(row)
    wb.save(path)
    return path


def good_row(
    invoice=536365,
    stock=85123,
    qty=6,
    price=2.55,
    customer=17850,
    country="United Kingdom",
    when=datetime(2010, 12, 1, 8, 26),
    description="WHITE HANGING HEART T-LIGHT HOLDER",
) -> list:
    return [invoice, stock, description, qty, when, price, customer, country]


def run_cli(home: Path, *args: str, check: bool = True, timeout: float = 900):
    """Run the installed `retail-pipeline` console script as a user would."""
    import subprocess
    import sys

    exe = Path(sys.executable).parent / "retail-pipeline"
    proc = subprocess.run([str(exe), "--home", str(home), *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc
