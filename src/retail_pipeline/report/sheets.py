"""Data sheets of the report, streamed: openpyxl write-only worksheets, one row at a time.

A sheet is a table: a bold header row that stays in view (frozen) and carries an auto-filter,
each column's definition as a comment on its header cell, widths set before the first row (a
write-only sheet writes its column widths first), and number formats per column. Rows go to a
temporary file as they are appended, so a sheet of any length takes the memory of one chunk.
A sheet holds at most Excel's 1,048,576 rows; :class:`ContinuedSheet` goes on in 'name (2)', ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from openpyxl.cell import WriteOnlyCell
from openpyxl.comments import Comment
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter

from .formats import GENERAL, cell_values, column_kind, number_format, width

if TYPE_CHECKING:
    import pandas
    from openpyxl import Workbook

EXCEL_MAX_ROWS = 1_048_576
HEADER_FONT = Font(bold=True)
HEADER_FILL = PatternFill("solid", fgColor="DDE3EA")
HEADER_BORDER = Border(bottom=Side(style="thin", color="8A96A3"))


@dataclass(frozen=True)
class SheetColumn:
    """One column of a sheet: name, kind (see formats.column_kind), number format, width, definition."""

    name: str
    kind: str
    number_format: str
    width: float
    description: str = ""


def columns_of(frame: pandas.DataFrame, descriptions: dict[str, str] | None = None) -> list[SheetColumn]:
    """The sheet columns of a DataFrame, formats and widths from its data."""
    out = []
    for name in frame.columns:
        kind = column_kind(frame[name])
        values = cell_values(frame[name].head(2000), kind) if kind == "text" else []
        out.append(
            SheetColumn(
                name, kind, number_format(name, kind), width(name, kind, values), (descriptions or {}).get(name, "")
            )
        )
    return out


def header_cell(ws: Any, value: str, comment: str = "") -> WriteOnlyCell:
    cell = WriteOnlyCell(ws, value=value)
    cell.font, cell.fill, cell.border = HEADER_FONT, HEADER_FILL, HEADER_BORDER
    cell.alignment = Alignment(vertical="top")
    if comment:
        cell.comment = Comment(comment, "retail-pipeline", width=320, height=90)
    return cell


class TableSheet:
    """A write-only sheet holding one table (see the module docstring)."""

    def __init__(self, workbook: Workbook, title: str, columns: list[SheetColumn]) -> None:
        self.title, self.columns, self.rows = title, columns, 0
        self.ws = workbook.create_sheet(title)
        for i, column in enumerate(columns, 1):
            self.ws.column_dimensions[get_column_letter(i)].width = column.width
        self.ws.freeze_panes = "A2"
        self.ws.append([header_cell(self.ws, c.name, c.description) for c in columns])
        # one styled cell per formatted column, given each row's value in turn (openpyxl writes a
        # row's cells before it takes the next row, so a cell object can carry many values)
        self._templates: list[WriteOnlyCell | None] = []
        for column in columns:
            template = None
            if column.number_format != GENERAL:
                template = WriteOnlyCell(self.ws)
                template.number_format = column.number_format
            self._templates.append(template)

    @property
    def room(self) -> int:
        return EXCEL_MAX_ROWS - 1 - self.rows

    def append_frame(self, frame: pandas.DataFrame) -> None:
        """Append the frame's rows (its columns in this sheet's order); at most :attr:`room` rows."""
        if len(frame) > self.room:
            raise ValueError(f"{self.title}: {len(frame)} rows do not fit ({self.room} left)")
        values = [cell_values(frame[c.name], c.kind) for c in self.columns]
        templates = self._templates
        append = self.ws.append
        for row in zip(*values):
            cells = []
            for value, template in zip(row, templates):
                if value is None or template is None:
                    cells.append(value)
                else:
                    template.value = value
                    cells.append(template)
            append(cells)
        self.rows += len(frame)

    def finish(self) -> None:
        """The auto-filter over the header and every row (written when the workbook is saved)."""
        self.ws.auto_filter.ref = f"A1:{get_column_letter(len(self.columns))}{self.rows + 1}"


class ContinuedSheet:
    """A table longer than one sheet holds: 'title', 'title (2)', ... with the same header."""

    def __init__(self, workbook: Workbook, title: str, columns: list[SheetColumn]) -> None:
        self.workbook, self.title, self.columns = workbook, title, columns
        self.sheets = [TableSheet(workbook, title, columns)]

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.sheets)

    def append_frame(self, frame: pandas.DataFrame) -> None:
        start = 0
        while start < len(frame):
            current = self.sheets[-1]
            if current.room == 0:
                current.finish()
                current = TableSheet(self.workbook, f"{self.title} ({len(self.sheets) + 1})", self.columns)
                self.sheets.append(current)
            part = frame.iloc[start : start + current.room]
            current.append_frame(part)
            start += len(part)

    def finish(self) -> None:
        self.sheets[-1].finish()
