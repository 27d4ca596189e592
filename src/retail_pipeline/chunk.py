"""What every reader yields: chunks of the eight source columns, and the error for a bad file.

Column headers are matched by their letters alone, so both the Online Retail and the Online
Retail II spellings (InvoiceNo/Invoice, UnitPrice/Price, CustomerID/Customer ID) are accepted.
Cells a typed column could not hold are reported with their raw text, never dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

#: header spelling (letters only, lower case) → canonical source field
HEADER_ALIASES = {
    "invoiceno": "invoice_no",
    "invoice": "invoice_no",
    "invoicenumber": "invoice_no",
    "stockcode": "stock_code",
    "description": "description",
    "quantity": "quantity",
    "invoicedate": "invoice_date",
    "unitprice": "unit_price",
    "price": "unit_price",
    "customerid": "customer_id",
    "country": "country",
}


class RejectedInput(Exception):
    """The file as a whole cannot be ingested. Permanent: recorded, never retried."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Chunk:
    """Rows of one sheet (or one batch of a CSV/Parquet file), columns named by SOURCE_FIELDS."""

    sheet: str
    first_row: int  #: source row number of the chunk's first row (header = row 1)
    table: pa.Table
    #: field → {row index in chunk: raw text} for cells the typed column could not hold
    cell_errors: dict[str, dict[int, str]] = field(default_factory=dict)
    #: set on a chunk read by a fast path that turns untypable cells into nulls without their
    #: text: reads the same rows again, slower, with ``cell_errors`` filled in
    reread: Callable[[], Chunk] | None = field(default=None, repr=False)

    def slice(self, offset: int, length: int) -> Chunk:
        """Rows [offset, offset + length) of this chunk (zero-copy), with their cell errors."""
        errors = {
            f: {row - offset: text for row, text in cells.items() if offset <= row < offset + length}
            for f, cells in self.cell_errors.items()
        }
        return Chunk(
            self.sheet,
            self.first_row + offset,
            self.table.slice(offset, length),
            {f: cells for f, cells in errors.items() if cells},
            self.reread,
        )


def source_fields() -> list[str]:
    """The canonical source fields, in order (schema.SOURCE_FIELDS)."""
    from .schema import SOURCE_FIELDS  # imports pyarrow: only once a file has been parsed

    return SOURCE_FIELDS


def normalize_header(name: str) -> str:
    return re.sub(r"[^a-z]", "", str(name).lower())


def map_columns(headers: list[str]) -> tuple[dict[str, str], list[str]]:
    """Source header → canonical field for the known columns, and the list of missing fields."""
    mapping: dict[str, str] = {}
    for header in headers:
        canonical = HEADER_ALIASES.get(normalize_header(header))
        if canonical and canonical not in mapping.values():
            mapping[header] = canonical
    missing = [f for f in source_fields() if f not in mapping.values()]
    return mapping, missing
