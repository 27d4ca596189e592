"""Workbooks (.xlsx, .xls) → one chunk per sheet that carries the columns, via fastexcel (calamine).

Before an .xlsx is opened, the zip guard measures what its members really inflate to (a zip
bomb's headers can lie) and encrypted or non-workbook archives are rejected.

Speed and memory (measured in docs/benchmarks.md): a sheet is first read in fastexcel's eager
mode, which builds Arrow straight from the parsed cells; a cell it cannot type becomes null
there, without its text. Every such cell makes its row fail a rule (a blank required value) or
only matters for a quarantined row's raw text, so a chunk that quarantines nothing is exact,
and one that does is read again with per-cell detail (:attr:`Chunk.reread`). pyarrow, and the
schema module that imports it, are imported only after the parse: calamine's parse peak and
pyarrow's ~75 MB import footprint then never add up.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .chunk import HEADER_ALIASES, Chunk, RejectedInput, map_columns, normalize_header, source_fields
from .config import Limits

if TYPE_CHECKING:
    import pyarrow as pa

#: fastexcel dtypes per canonical field: identifiers as text, so '85123A' and 85123 both stay codes
FIELD_DTYPES = {
    "invoice_no": "string",
    "stock_code": "string",
    "description": "string",
    "quantity": "float",
    "invoice_date": "datetime",
    "unit_price": "float",
    "customer_id": "string",
    "country": "string",
}
#: fastexcel dtypes for the usual spellings, so the common case reads each sheet once
KNOWN_DTYPES = {
    spelling: FIELD_DTYPES[canonical]
    for canonical, spellings in {
        "invoice_no": ["InvoiceNo", "Invoice", "Invoice No", "invoice_no"],
        "stock_code": ["StockCode", "Stock Code", "stock_code"],
        "description": ["Description", "description"],
        "quantity": ["Quantity", "quantity"],
        "invoice_date": ["InvoiceDate", "Invoice Date", "invoice_date"],
        "unit_price": ["UnitPrice", "Price", "Unit Price", "unit_price", "price"],
        "customer_id": ["CustomerID", "Customer ID", "customer_id"],
        "country": ["Country", "country"],
    }.items()
    for spelling in spellings
}


def read_xlsx(path: Path, limits: Limits) -> Iterator[Chunk]:
    check_zip(path, limits)
    yield from read_excel(path)


def read_xls(path: Path) -> Iterator[Chunk]:
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    if "EncryptedPackage".encode("utf-16-le") in head or b"E\x00n\x00c\x00r\x00y\x00p\x00t\x00" in head:
        raise RejectedInput("encrypted_workbook", "the workbook is password-protected; save it without a password")
    yield from read_excel(path)


def check_zip(path: Path, limits: Limits) -> None:
    """Reject archives that are not workbooks, are encrypted, damaged, or inflate past the limit.

    The inflated size is measured by inflating every member (zipguard), not read from the zip
    headers, which a zip bomb can forge.
    """
    from .zipguard import ZipLimitExceeded, inflated_size

    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
        names = {i.filename for i in infos}
        if any(i.flag_bits & 0x1 for i in infos):
            raise RejectedInput("encrypted_workbook", "the workbook is encrypted")
        if "[Content_Types].xml" not in names or not any(n.startswith("xl/worksheets/") for n in names):
            raise RejectedInput("not_a_workbook", "a zip archive, but not an Excel workbook (no xl/worksheets/)")
        inflated_size(path, limits.max_uncompressed_bytes)
    except ZipLimitExceeded as exc:
        raise RejectedInput(
            "decompressed_too_large",
            f"the workbook inflates to more than {limits.max_uncompressed_bytes:,} bytes (the limit)",
        ) from exc
    except zipfile.BadZipFile as exc:
        raise RejectedInput("corrupt_workbook", f"not a readable workbook: {exc}") from exc


def _wanted(column: Any) -> bool:
    return normalize_header(column.name) in HEADER_ALIASES


def read_excel(path: Path) -> Iterator[Chunk]:
    """One chunk per sheet that carries the columns; rejects a workbook where none does."""
    import fastexcel

    try:
        reader = fastexcel.read_excel(str(path))
        sheet_names = reader.sheet_names
    except Exception as exc:  # fastexcel raises its own hierarchy; all mean "cannot open"
        raise RejectedInput("corrupt_workbook", f"not a readable workbook: {exc}") from exc
    found = False
    missing_by_sheet: dict[str, list[str]] = {}
    for sheet_name in sheet_names:
        chunk_or_missing = read_sheet_fast(reader, sheet_name)
        if isinstance(chunk_or_missing, list):
            missing_by_sheet[sheet_name] = chunk_or_missing
            continue
        found = True
        yield chunk_or_missing  # only the consumer holds the rows: no local name keeps them alive
    if not found:
        detail = "; ".join(f"sheet {s!r} lacks {', '.join(m)}" for s, m in missing_by_sheet.items())
        raise RejectedInput("missing_columns", f"no sheet carries the required columns ({detail})")


def read_sheet_fast(reader: Any, sheet_name: str) -> Chunk | list[str]:
    """The sheet as a chunk (eager read, see the module doc), or the fields it lacks."""
    import fastexcel

    try:
        batch = reader.load_sheet(sheet_name, use_columns=_wanted, dtypes=KNOWN_DTYPES, eager=True)
    except fastexcel.FastExcelError as exc:
        if "no columns" in str(exc).lower() or ("column" in str(exc).lower() and "select" in str(exc).lower()):
            return list(source_fields())
        raise RejectedInput("corrupt_workbook", f"sheet {sheet_name!r} cannot be read: {exc}") from exc
    except Exception as exc:
        raise RejectedInput("corrupt_workbook", f"sheet {sheet_name!r} cannot be read: {exc}") from exc
    mapping, missing = map_columns(batch.schema.names)
    if missing:
        return missing
    reread = partial(read_sheet_exact, reader, sheet_name, mapping)
    if any(header not in KNOWN_DTYPES for header in mapping):
        # an unusual spelling: read again with the types named for this sheet's own headers
        del batch
        return reread()
    import pyarrow as pa

    table = _to_fields(pa.Table.from_batches([batch]), mapping)
    del batch
    return Chunk(sheet_name, 2, table, reread=reread)


def read_sheet_exact(reader: Any, sheet_name: str, mapping: dict[str, str]) -> Chunk:
    """The sheet typed by its own headers, with the raw text of every cell a type could not hold."""
    import pyarrow as pa

    dtypes = {header: FIELD_DTYPES[canonical] for header, canonical in mapping.items()}
    try:
        sheet = reader.load_sheet(sheet_name, use_columns=list(mapping), dtypes=dtypes)
        table, errors = sheet.to_arrow_with_errors()
        read_order = [c.name for c in sheet.selected_columns]
    except Exception as exc:  # fastexcel's own hierarchy: the sheet cannot be read
        raise RejectedInput("corrupt_workbook", f"sheet {sheet_name!r} cannot be read: {exc}") from exc
    del sheet
    table = pa.Table.from_batches([table]) if isinstance(table, pa.RecordBatch) else table
    errors_by_field = _cell_errors(errors, [mapping.get(n) for n in read_order])
    return Chunk(sheet_name, 2, _to_fields(table, mapping), errors_by_field)


def _to_fields(table: pa.Table, mapping: dict[str, str]) -> pa.Table:
    keep = [n for n in table.column_names if n in mapping]
    return table.select(keep).rename_columns([mapping[n] for n in keep]).select(source_fields())


_RAW = re.compile(r"""got '(?:String|DateTimeIso|DurationIso)\((.*)\)'$""", re.S)


def _cell_errors(errors: Any, read_order: list[str | None]) -> dict[str, dict[int, str]]:
    out: dict[str, dict[int, str]] = {}
    if errors is None:
        return out
    for err in errors.errors:
        row, col = err.offset_position
        name = read_order[col] if col < len(read_order) else None
        if name is None:
            continue
        match = _RAW.search(err.detail)
        raw = match.group(1) if match else err.detail.split("but got", 1)[-1].strip(" '")
        if raw.startswith('"') and raw.endswith('"'):
            raw = raw[1:-1].replace('\\"', '"')
        out.setdefault(name, {})[row] = raw
    return out
