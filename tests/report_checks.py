"""Reading a report workbook back in tests: its summary's month-against-month figures, for comparing
with the marts queried directly (tests/test_report_publish.py, tests/test_cloud_truth.py)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

#: summary row label -> mart_revenue_monthly column
MONTH_MEASURES = {
    "Net revenue": "net_revenue",
    "Gross sales": "gross_sales",
    "Cancellations": "cancellations",
    "Orders": "orders",
    "Customers": "customers",
    "Average order value": "average_order_value",
    "Cancellation rate": "cancellation_rate",
    "Items sold": "items_sold",
}
MONTHLY_SQL = "select {columns} from mart_revenue_monthly where invoice_month = date '{month}-01'".format


def exact(value) -> Decimal:
    """A number read back from the workbook (or a mart) as a Decimal: exact for these figures."""
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))


def label(month: str) -> str:
    """'2011-11' -> 'Nov 2011', as the summary names a month."""
    year, number = month.split("-")
    return date(int(year), int(number), 1).strftime("%b %Y")


def previous(month: str) -> str:
    year, number = (int(x) for x in month.split("-"))
    return f"{year - 1}-12" if number == 1 else f"{year}-{number - 1:02d}"


def summary_figures(book) -> tuple[str, tuple, dict[str, tuple[Decimal, Decimal]]]:
    """(title, the two month headers, {mart column: (month's value, previous month's value)})."""
    ws = book["Summary"]
    rows = [tuple(c.value for c in row) for row in ws.iter_rows()]
    header = next(i for i, r in enumerate(rows) if r[0] == "Measure")
    shown = {r[0]: r for r in rows[header + 1 : header + 1 + len(MONTH_MEASURES)]}
    assert list(shown) == list(MONTH_MEASURES)
    figures = {column: (exact(shown[name][1]), exact(shown[name][2])) for name, column in MONTH_MEASURES.items()}
    return rows[0][0], rows[header][1:3], figures


def assert_summary_equals_marts(book, month: str, sql) -> None:
    """The summary of MONTH's report shows mart_revenue_monthly's figures for MONTH and the month before;
    ``sql(statement)`` returns the rows of a direct query of the marts."""
    title, headers, figures = summary_figures(book)
    assert title == f"Online Retail: {label(month)}"
    assert headers == (label(month), label(previous(month)))
    columns = ", ".join(MONTH_MEASURES.values())
    (now,) = sql(MONTHLY_SQL(columns=columns, month=month))
    (then,) = sql(MONTHLY_SQL(columns=columns, month=previous(month)))
    for column, a, b in zip(MONTH_MEASURES.values(), now, then):
        assert figures[column] == (exact(a), exact(b)), (column, figures[column], a, b)
