"""The report's first sheet: the month's headline figures against the month before, the month's
countries, the RFM segments, a guide to the other sheets, and three native Excel charts.

Every figure comes from a mart: the headline from ``mart_revenue_monthly`` (the month's row and
the previous month's), countries from the month's rows of ``mart_invoices`` (which hold every
line once, so they add up to the month's net revenue), segments from ``mart_customer_rfm``.
The 'About' sheet (:func:`about_frame`) says what every other sheet holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from openpyxl.cell import WriteOnlyCell
from openpyxl.chart import BarChart, LineChart, Reference
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from .formats import INTEGER, MONEY, PERCENT
from .sheets import header_cell

if TYPE_CHECKING:
    import pandas
    from openpyxl import Workbook

#: (label, mart_revenue_monthly column, number format)
MEASURES = (
    ("Net revenue", "net_revenue", MONEY),
    ("Gross sales", "gross_sales", MONEY),
    ("Cancellations", "cancellations", MONEY),
    ("Orders", "orders", INTEGER),
    ("Customers", "customers", INTEGER),
    ("Average order value", "average_order_value", MONEY),
    ("Cancellation rate", "cancellation_rate", PERCENT),
    ("Items sold", "items_sold", INTEGER),
)
SEGMENT_ORDER = ("Champions", "Loyal", "Potential loyalist", "New", "Needs attention", "At risk", "Hibernating", "Lost")
TOP_COUNTRIES = 10
WHOLE_POUNDS = '"£"#,##0'  #: value axes of money charts
CHART_COLUMN = "G"


@dataclass(frozen=True)
class SheetGuide:
    """A line of the 'About' sheet: what a sheet holds."""

    sheet: str
    rows: int
    scope: str
    grain: str


def about_frame(guides: list[SheetGuide]) -> pandas.DataFrame:
    import pandas as pd

    return pd.DataFrame(
        {
            "sheet": [g.sheet for g in guides],
            "rows": pd.array([g.rows for g in guides], dtype="Int64"),
            "rows_shown": [g.scope for g in guides],
            "grain": [g.grain for g in guides],
        }
    )


def month_label(month: str) -> str:
    from datetime import date

    return date(int(month[:4]), int(month[5:7]), 1).strftime("%b %Y")


def headline(monthly: pandas.DataFrame, month: str) -> dict[str, Any] | None:
    """The month's row of mart_revenue_monthly as {column: value}, or None when it has none."""
    rows = monthly[[d.strftime("%Y-%m") == month for d in monthly["invoice_month"]]]
    if rows.empty:
        return None
    return {column: (None if _missing(value) else value) for column, value in rows.to_dict("records")[0].items()}


def _missing(value: Any) -> bool:
    import pandas as pd

    return not isinstance(value, (Decimal, str)) and bool(pd.isna(value))


def countries(invoices: pandas.DataFrame) -> list[tuple[str, Decimal, int, int]]:
    """(country, net revenue, orders, customers) of the month, largest first; past the top ten one
    'Other countries' row. Orders and customers are distinct within the row, as in the marts."""
    net: dict[str, Decimal] = {}
    for country, value in zip(invoices["country"], invoices["net_revenue"]):
        net[country] = net.get(country, Decimal(0)) + value
    ranked = sorted(net, key=lambda c: (-net[c], c))
    groups = [(c, {c}) for c in ranked[:TOP_COUNTRIES]]
    if len(ranked) > TOP_COUNTRIES:
        groups.append(("Other countries", set(ranked[TOP_COUNTRIES:])))
    rows = []
    for label, members in groups:
        part = invoices[invoices["country"].isin(members)]
        orders = part[part["is_order"].fillna(False).astype(bool)]
        rows.append(
            (
                label,
                sum((net[c] for c in members), Decimal(0)),
                int(orders["invoice_no"].nunique()),
                int(orders["customer_id"].dropna().nunique()),
            )
        )
    return rows


def segments(rfm: pandas.DataFrame) -> list[tuple[str, int, Decimal]]:
    """(segment, customers, net revenue) in the segments' usual order."""
    found: dict[str, list] = {}
    for segment, value in zip(rfm["segment"], rfm["net_revenue"]):
        entry = found.setdefault(segment, [0, Decimal(0)])
        entry[0] += 1
        entry[1] += value
    order = [s for s in SEGMENT_ORDER if s in found] + sorted(set(found) - set(SEGMENT_ORDER))
    return [(s, found[s][0], found[s][1]) for s in order]


class SummarySheet:
    """Writes the summary sheet row by row (write-only), then anchors the charts."""

    def __init__(self, workbook: Workbook) -> None:
        self.ws = workbook.create_sheet("Summary")
        for column, w in zip("ABCDEF", (30, 17, 17, 15, 11, 3)):
            self.ws.column_dimensions[column].width = w
        self.row = 0
        page = self.ws.page_setup
        page.orientation, page.fitToWidth, page.fitToHeight = "landscape", 1, 1
        self.ws.sheet_properties.pageSetUpPr.fitToPage = True

    def _cell(self, value: Any, fmt: str | None = None, bold: bool = False, size: float | None = None) -> Any:
        if fmt is None and not bold:
            return value
        cell = WriteOnlyCell(self.ws, value=value)
        if fmt:
            cell.number_format = fmt
        if bold or size:
            cell.font = Font(bold=bold, size=size)
        return cell

    def append(self, *values: Any) -> int:
        self.ws.append(list(values))
        self.row += 1
        return self.row

    def title(self, text: str, note: str) -> None:
        self.append(self._cell(text, bold=True, size=14))
        self.append(note)
        self.append()

    def headline(self, month: str, previous: str, this: dict | None, before: dict | None) -> int:
        """The measures table; returns its first data row."""
        self.append(
            *(
                header_cell(self.ws, h)
                for h in ("Measure", month_label(month), month_label(previous), "Change", "Change %")
            )
        )
        first = self.row + 1
        for label, column, fmt in MEASURES:
            now = (this or {}).get(column)
            then = (before or {}).get(column)
            change = change_pct = None
            if now is not None and then is not None:
                change = now - then
                if fmt != PERCENT and then != 0:
                    change_pct = float(Decimal(now) / Decimal(then) - 1)
            self.append(
                label,
                self._cell(now, fmt),
                self._cell(then, fmt),
                self._cell(change, fmt),
                self._cell(change_pct, "+0.0%;-0.0%"),
            )
        self.append()
        return first

    def table(self, caption: str, headers: tuple[str, ...], rows: list[tuple], formats: tuple[str | None, ...]) -> int:
        """A captioned table; returns the row of its header."""
        self.append(self._cell(caption, bold=True))
        header = self.append(*(header_cell(self.ws, h) for h in headers))
        for row in rows:
            self.append(*(self._cell(v, f) for v, f in zip(row, formats)))
        self.append()
        return header

    # -- charts ---------------------------------------------------------------------------------
    def monthly_chart(self, monthly_sheet: str, month_col: int, net_col: int, rows: int, anchor_row: int) -> None:
        chart = LineChart()
        chart.title = "Net revenue by month"
        _style(chart, "£")
        chart.add_data(_ref(monthly_sheet, net_col, 1, rows + 1), titles_from_data=True)
        chart.set_categories(_ref(monthly_sheet, month_col, 2, rows + 1))
        for series in chart.series:
            series.smooth = False  # straight segments between months: no invented curve
        chart.x_axis.number_format = "mmm yy"
        chart.y_axis.number_format = WHOLE_POUNDS
        self.ws.add_chart(chart, f"{CHART_COLUMN}{anchor_row}")

    def bar_chart(self, title: str, header_row: int, rows: int, value_col: int, anchor_row: int, y_title: str) -> None:
        chart = BarChart()
        chart.type = "bar"  # horizontal: long country and segment names stay readable
        chart.title = title
        _style(chart, y_title)
        chart.x_axis.scaling.orientation = "maxMin"  # the largest on top
        if y_title == "£":
            chart.y_axis.number_format = WHOLE_POUNDS
        chart.add_data(_ref(self.ws.title, value_col, header_row, header_row + rows), titles_from_data=True)
        chart.set_categories(_ref(self.ws.title, 1, header_row + 1, header_row + rows))
        self.ws.add_chart(chart, f"{CHART_COLUMN}{anchor_row}")


def _ref(sheet: str, column: int, first_row: int, last_row: int) -> Reference:
    letter = get_column_letter(column)
    return Reference(range_string=f"'{sheet}'!${letter}${first_row}:${letter}${last_row}")


def _style(chart: Any, y_title: str) -> None:
    chart.height, chart.width = 7.5, 17.0
    chart.legend = None
    chart.y_axis.title = y_title
    chart.x_axis.delete = False  # openpyxl 3.1 hides axes unless told otherwise
    chart.y_axis.delete = False
