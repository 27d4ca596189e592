"""The monthly Excel report: a summary sheet with charts, one sheet per mart, optionally the lines.

``write_report(out, month=...)`` reads the marts through the analytics API (so it works on DuckDB
and BigQuery alike) and writes the workbook with openpyxl in write-only mode. What each mart
sheet holds follows the mart's columns: marts by invoice day (daily revenue, invoices, product
sales by day) hold the report month's days; the monthly mart holds every month up to the report
month; the others are whole-data views (countries, products, customers, cohorts, data quality).
``lines='month'`` or ``'all'`` adds the fact lines of the month or of every month, read and
written one month at a time so memory stays that of one month's lines.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from ..analytics import Analytics, AnalyticsError, month_range
from .formats import INTEGER, MONEY
from .sheets import ContinuedSheet, TableSheet, columns_of
from .summary import SheetGuide, SummarySheet, about_frame, countries, headline, month_label, segments

if TYPE_CHECKING:
    import pandas

    from ..config import Settings
    from ..ports import ObjectInfo, ObjectStore

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
LINES = ("none", "month", "all")
#: Sheet order after the summary (a mart not named here follows, by name).
SHEET_ORDER = (
    "mart_revenue_monthly",
    "mart_revenue_daily",
    "mart_revenue_by_country",
    "mart_invoices",
    "mart_product_performance",
    "mart_product_sales_daily",
    "mart_customer_rfm",
    "mart_cohort_retention",
    "mart_data_quality",
)
LINE_COLUMNS = [
    "invoice_no",
    "invoice_datetime",
    "stock_code",
    "description",
    "quantity",
    "unit_price",
    "amount",
    "customer_id",
    "country",
    "line_type",
]
LINE_DESCRIPTIONS = {
    "invoice_no": "Invoice number ('C' prefix: cancellation, 'A': bad-debt adjustment).",
    "invoice_datetime": "Invoice date and time as in the source (UK local time).",
    "stock_code": "Product or non-product code (POST, M, fees, ...).",
    "quantity": "Units; negative for cancellations and stock adjustments.",
    "unit_price": "Price per unit, GBP.",
    "amount": "quantity × unit_price, GBP (all line types: see line_type).",
    "line_type": "sale, free_item, postage, cancellation, discount, non_product, fee, bad_debt_adjustment or "
    "stock_adjustment (the revenue definitions decide what counts as revenue).",
}


ABOUT_COLUMNS = {
    "sheet": "A sheet of this workbook: one per mart (its name), then the fact lines if asked for.",
    "rows": "Data rows on the sheet (below its header).",
    "rows_shown": "Which of the mart's rows the sheet holds for this report month.",
    "grain": "What one row is, from the mart's dbt documentation.",
}


class ReportError(ValueError):
    """The report cannot be written for these inputs (no data, a month without data, ...)."""


@dataclass
class ReportResult:
    path: Path
    month: str
    previous: str
    sheets: dict[str, int] = field(default_factory=dict)  #: sheet → data rows
    lines: int = 0  #: fact lines written


def previous_month(month: str) -> str:
    first, _ = month_range(month)
    return (first - timedelta(days=1)).strftime("%Y-%m")


def _scope(columns: list[str], month: str) -> tuple[list[tuple[str, str, object]] | None, str]:
    first, after = month_range(month)
    if "invoice_date" in columns:
        return [("invoice_date", ">=", first), ("invoice_date", "<", after)], f"days of {month_label(month)}"
    if "invoice_month" in columns:
        return [("invoice_month", "<=", first)], f"months up to {month_label(month)}"
    return None, "all dates"


def _presentation(frame: pandas.DataFrame) -> pandas.DataFrame:
    if "revenue_rank" in frame.columns:  # ranked marts read best first
        return frame.sort_values("revenue_rank", kind="stable", ignore_index=True)
    return frame


def write_report(
    out: Path,
    *,
    month: str | None = None,
    lines: str = "none",
    settings: Settings | None = None,
    source: Analytics | None = None,
    progress: Callable[[str], None] | None = None,
) -> ReportResult:
    """Write the report of ``month`` ('YYYY-MM'; default the latest month with data) to ``out``."""
    from openpyxl import Workbook

    say = progress or (lambda _m: None)
    if lines not in LINES:
        raise ReportError(f"lines must be one of {', '.join(LINES)}, not {lines!r}")
    source = source or Analytics.open(settings)
    try:
        months = source.months()
        if not months:
            raise ReportError("the marts hold no data yet: run the pipeline on a workbook first")
        month = month_range(month)[0].strftime("%Y-%m") if month else months[-1]
        if month not in months:
            raise ReportError(f"no data for {month}: the months with data are {months[0]} to {months[-1]}")
        previous = previous_month(month)
        frames, guides = {}, []
        order = {name: i for i, name in enumerate(SHEET_ORDER)}
        for mart in sorted(source.marts(), key=lambda m: (order.get(m.name, len(order)), m.name)):
            where, scope = _scope(list(mart.columns), month)
            frames[mart.name] = _presentation(source.read_mart(mart.name, where=where))
            guides.append(SheetGuide(mart.name, len(frames[mart.name]), scope, mart.grain))
        line_months = {"none": [], "month": [month], "all": months}[lines]
    except AnalyticsError as exc:
        raise ReportError(str(exc)) from exc

    monthly = frames["mart_revenue_monthly"]
    line_count = (
        sum(int(n) for m, n in zip(monthly["invoice_month"], monthly["lines"]) if m.strftime("%Y-%m") in line_months)
        if line_months
        else 0
    )
    if line_months:
        scope = f"lines of {month_label(month)}" if lines == "month" else "every line, all dates"
        guides.append(SheetGuide("lines", line_count, scope, "one row per fact line (fct_sales_lines)"))

    workbook = Workbook(write_only=True)
    summary = SummarySheet(workbook)
    summary.title(
        f"Online Retail: {month_label(month)}",
        f"From {source.label or 'the warehouse'}, written "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M')} UTC. Money in GBP; net revenue = gross sales "
        "+ shipping + cancellations + adjustments; an order is an invoice with a gross-sales line.",
    )
    first_row = summary.headline(month, previous, headline(monthly, month), headline(monthly, previous))
    month_invoices = frames["mart_invoices"]
    country_rows = countries(month_invoices)
    country_header = summary.table(
        f"Net revenue by country, {month_label(month)}",
        ("Country", "Net revenue", "Orders", "Customers"),
        country_rows,
        (None, MONEY, INTEGER, INTEGER),
    )
    segment_rows = segments(frames["mart_customer_rfm"])
    segment_header = summary.table(
        "Customers by RFM segment (all dates)",
        ("Segment", "Customers", "Net revenue"),
        segment_rows,
        (None, INTEGER, MONEY),
    )
    summary.append("The 'About' sheet lists what every sheet holds; hover a column header for its definition.")
    columns = list(monthly.columns)
    summary.monthly_chart(
        "mart_revenue_monthly",
        columns.index("invoice_month") + 1,
        columns.index("net_revenue") + 1,
        len(monthly),
        first_row - 1,
    )
    summary.bar_chart(
        f"Net revenue by country, {month_label(month)}",
        country_header,
        min(len(country_rows), 11),
        2,
        first_row + 15,
        "£",
    )
    summary.bar_chart("Customers by RFM segment", segment_header, len(segment_rows), 2, first_row + 31, "customers")

    result = ReportResult(Path(out), month, previous)
    about = TableSheet(workbook, "About", columns_of(about_frame(guides), ABOUT_COLUMNS))
    about.append_frame(about_frame(guides))
    about.finish()
    descriptions = {m.name: m.columns for m in source.marts()}
    for name, frame in frames.items():
        sheet = TableSheet(workbook, name, columns_of(frame, descriptions[name]))
        sheet.append_frame(frame)
        sheet.finish()
        result.sheets[name] = sheet.rows
    del frames, month_invoices
    if line_months:
        result.lines = _write_lines(workbook, source, line_months, say)
        result.sheets["lines"] = result.lines
    _save(workbook, Path(out))
    return result


def _write_lines(workbook, source: Analytics, months: list[str], say: Callable[[str], None]) -> int:
    """Stream the fact lines month by month into 'lines' (continued past Excel's row limit)."""
    sheet: ContinuedSheet | None = None
    for month, frame in source.fact_by_month(months, columns=LINE_COLUMNS):
        if sheet is None:
            sheet = ContinuedSheet(workbook, "lines", columns_of(frame, LINE_DESCRIPTIONS))
        sheet.append_frame(frame)
        say(f"lines of {month}: {len(frame):,} rows")
    if sheet is None:
        return 0
    sheet.finish()
    return sheet.rows


def _save(workbook, out: Path) -> None:
    """Save next to ``out`` and rename: a reader never sees half a workbook."""
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(handle)
    try:
        workbook.save(tmp)
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)


def report_object_name(month: str, prefix: str = "reports/") -> str:
    """Where the month's report goes in a bucket: ``reports/online-retail-YYYY-MM.xlsx``."""
    return f"{prefix}online-retail-{month}.xlsx"


def write_report_to_store(
    store: ObjectStore,
    name: str | None = None,
    *,
    month: str | None = None,
    settings: Settings | None = None,
    source: Analytics | None = None,
) -> ObjectInfo:
    """Write the month's report (default: the latest month) and put it in ``store`` as ``name``
    (default :func:`report_object_name`): what the transform step does after a successful dbt run."""
    with tempfile.TemporaryDirectory(prefix="retail-report-") as folder:
        result = write_report(Path(folder) / "report.xlsx", month=month, settings=settings, source=source)
        return store.put(
            name or report_object_name(result.month), result.path, content_type=XLSX, metadata={"month": result.month}
        )
