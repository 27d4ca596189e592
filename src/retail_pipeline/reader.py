"""Readers: a landing object → chunks of the eight source columns as Arrow.

A workbook is read with fastexcel (calamine) straight into Arrow, every sheet that carries the
columns, one chunk per sheet. CSV (plain or gzip) and Parquet are streamed in bounded batches.
Column headers are matched by their letters alone, so both the Online Retail and the Online
Retail II spellings (InvoiceNo/Invoice, UnitPrice/Price, CustomerID/Customer ID) are accepted.
Cells a typed column could not hold are reported with their raw text, never dropped.

Speed and memory (measured in docs/benchmarks.md): a sheet is first read in fastexcel's eager
mode, which builds Arrow straight from the parsed cells; a cell it cannot type becomes null
there, without its text. Every such cell makes its row fail a rule (a blank required value) or
only matters for a quarantined row's raw text, so a chunk that quarantines nothing is exact,
and one that does is read again with per-cell detail (:attr:`Chunk.reread`). pyarrow, and the
schema module that imports it, are imported only after the parse: calamine's parse peak and
pyarrow's ~75 MB import footprint then never add up.
"""

from __future__ import annotations

import gzip
import re
import zipfile
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from .config import Limits

if TYPE_CHECKING:
    import pyarrow as pa

#: header spelling (letters only, lower case) → canonical source field
HEADER_ALIASES = {
    "invoiceno": "invoice_no", "invoice": "invoice_no", "invoicenumber": "invoice_no",
    "stockcode": "stock_code",
    "description": "description",
    "quantity": "quantity",
    "invoicedate": "invoice_date",
    "unitprice": "unit_price", "price": "unit_price",
    "customerid": "customer_id",
    "country": "country",
}
#: fastexcel dtypes per canonical field: identifiers as text, so '85123A' and 85123 both stay codes
FIELD_DTYPES = {
    "invoice_no": "string", "stock_code": "string", "description": "string", "quantity": "float",
    "invoice_date": "datetime", "unit_price": "float", "customer_id": "string", "country": "string",
}
#: CSV bytes Arrow parses at once: its streaming reader holds a few dozen times this in memory
CSV_BLOCK_BYTES = 1024 * 1024
CSV_CHUNK_ROWS = 100_000  #: CSV rows gathered into one chunk (one pass of the cleaning rules)
PARQUET_BATCH_ROWS = 128_000  #: Parquet rows per streamed batch


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
    reread: Callable[[], "Chunk"] | None = field(default=None, repr=False)

    def slice(self, offset: int, length: int) -> "Chunk":
        """Rows [offset, offset + length) of this chunk (zero-copy), with their cell errors."""
        errors = {f: {row - offset: text for row, text in cells.items() if offset <= row < offset + length}
                  for f, cells in self.cell_errors.items()}
        return Chunk(self.sheet, self.first_row + offset, self.table.slice(offset, length),
                     {f: cells for f, cells in errors.items() if cells}, self.reread)


def _source_fields() -> list[str]:
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
    missing = [f for f in _source_fields() if f not in mapping.values()]
    return mapping, missing


def sniff(path: Path, name: str) -> str:
    """'xlsx', 'xls', 'csv', 'csv.gz' or 'parquet', from the content first and the name second."""
    with open(path, "rb") as f:
        head = f.read(8)
    lower = name.lower()
    if not head:
        raise RejectedInput("empty_file", "the object is empty (0 bytes)")
    if head.startswith(b"PK\x03\x04"):
        return "xlsx"
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        return "xls"  # OLE container: legacy .xls, or an encrypted (password-protected) .xlsx
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"\x1f\x8b"):
        return "csv.gz"
    if lower.endswith((".xlsx", ".xlsm", ".xls")):
        raise RejectedInput("not_a_workbook", f"{name} is named like a workbook but is not one (no zip or OLE signature)")
    if lower.endswith(".csv"):
        return "csv"
    raise RejectedInput("unsupported_format", f"{name}: not an Excel workbook, CSV or Parquet file")


def read_source(path: Path, name: str, limits: Limits) -> Iterator[Chunk]:
    """Chunks of a landing file; raises RejectedInput for a file that cannot be ingested."""
    size = path.stat().st_size
    if size > limits.max_object_bytes:
        raise RejectedInput("object_too_large", f"object is {size:,} bytes; the limit is {limits.max_object_bytes:,}")
    kind = sniff(path, name)
    if kind == "xlsx":
        yield from _read_xlsx(path, limits)
    elif kind == "xls":
        yield from _read_xls(path)
    elif kind in ("csv", "csv.gz"):
        yield from _read_csv(path, gzipped=kind == "csv.gz", limits=limits)
    else:
        yield from _read_parquet(path)


def _check_zip(path: Path, limits: Limits) -> None:
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


def _read_xlsx(path: Path, limits: Limits) -> Iterator[Chunk]:
    _check_zip(path, limits)
    yield from _read_excel(path)


def _read_xls(path: Path) -> Iterator[Chunk]:
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    if "EncryptedPackage".encode("utf-16-le") in head or b"E\x00n\x00c\x00r\x00y\x00p\x00t\x00" in head:
        raise RejectedInput("encrypted_workbook", "the workbook is password-protected; save it without a password")
    yield from _read_excel(path)


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


def _wanted(column) -> bool:
    return normalize_header(column.name) in HEADER_ALIASES


def _read_excel(path: Path) -> Iterator[Chunk]:
    import fastexcel

    try:
        reader = fastexcel.read_excel(str(path))
        sheet_names = reader.sheet_names
    except Exception as exc:  # fastexcel raises its own hierarchy; all mean "cannot open"
        raise RejectedInput("corrupt_workbook", f"not a readable workbook: {exc}") from exc
    found = False
    missing_by_sheet: dict[str, list[str]] = {}
    for sheet_name in sheet_names:
        chunk_or_missing = _read_sheet_fast(reader, sheet_name)
        if isinstance(chunk_or_missing, list):
            missing_by_sheet[sheet_name] = chunk_or_missing
            continue
        found = True
        yield chunk_or_missing  # only the consumer holds the rows: no local name keeps them alive
    if not found:
        detail = "; ".join(f"sheet {s!r} lacks {', '.join(m)}" for s, m in missing_by_sheet.items())
        raise RejectedInput("missing_columns", f"no sheet carries the required columns ({detail})")


def _read_sheet_fast(reader, sheet_name: str) -> Chunk | list[str]:
    """The sheet as a chunk (eager read, see the module doc), or the fields it lacks."""
    import fastexcel

    try:
        batch = reader.load_sheet(sheet_name, use_columns=_wanted, dtypes=KNOWN_DTYPES, eager=True)
    except fastexcel.FastExcelError as exc:
        if "no columns" in str(exc).lower() or "column" in str(exc).lower() and "select" in str(exc).lower():
            return list(_source_fields())
        raise RejectedInput("corrupt_workbook", f"sheet {sheet_name!r} cannot be read: {exc}") from exc
    except Exception as exc:
        raise RejectedInput("corrupt_workbook", f"sheet {sheet_name!r} cannot be read: {exc}") from exc
    mapping, missing = map_columns(batch.schema.names)
    if missing:
        return missing
    reread = partial(_read_sheet_exact, reader, sheet_name, mapping)
    if any(header not in KNOWN_DTYPES for header in mapping):
        # an unusual spelling: read again with the types named for this sheet's own headers
        del batch
        return reread()
    import pyarrow as pa

    table = _to_fields(pa.Table.from_batches([batch]), mapping)
    del batch
    return Chunk(sheet_name, 2, table, reread=reread)


def _read_sheet_exact(reader, sheet_name: str, mapping: dict[str, str]) -> Chunk:
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


def _to_fields(table: "pa.Table", mapping: dict[str, str]) -> "pa.Table":
    keep = [n for n in table.column_names if n in mapping]
    return table.select(keep).rename_columns([mapping[n] for n in keep]).select(_source_fields())


_RAW = re.compile(r"""got '(?:String|DateTimeIso|DurationIso)\((.*)\)'$""", re.S)


def _cell_errors(errors, read_order: list[str | None]) -> dict[str, dict[int, str]]:
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


def _csv_header(path: Path, gzipped: bool) -> list[str]:
    """The header record of a CSV file, parsed by the csv module (handles quotes and a BOM)."""
    import csv
    import io

    try:
        raw = gzip.open(path, "rb") if gzipped else open(path, "rb")
        with raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as text:
            header = next(csv.reader(text), None)
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise RejectedInput("unreadable_csv", f"not a readable CSV file: {exc}") from exc
    if not header:
        raise RejectedInput("unreadable_csv", "the CSV file has no header row")
    return header


def _read_csv(path: Path, *, gzipped: bool, limits: Limits) -> Iterator[Chunk]:
    """Stream a CSV in chunks of about CSV_CHUNK_ROWS rows, every column as text.

    Every cell stays text: numbers and dates are typed by the cleaning rules, like text cells
    of a workbook. The header is parsed once by the csv module; Arrow then reads the data with
    positional column names, so any header text (duplicates, odd quoting) is safe. Arrow parses
    small blocks (CSV_BLOCK_BYTES: its memory grows with the block size), gathered into chunks.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    header = _csv_header(path, gzipped)
    mapping, missing = map_columns(header)
    if missing:
        raise RejectedInput("missing_columns", f"the CSV lacks the required columns {', '.join(missing)}")
    positional = [f"c{i}" for i in range(len(header))]
    by_position = {f"c{header.index(h)}": canonical for h, canonical in mapping.items()}
    fields = _source_fields()
    stream = pa.input_stream(str(path), compression="gzip" if gzipped else None)
    try:
        try:
            reader = pacsv.open_csv(
                stream,
                read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES, skip_rows=1, column_names=positional),
                convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in by_position},
                                                     strings_can_be_null=True, null_values=[""],
                                                     include_columns=list(by_position)),
                parse_options=pacsv.ParseOptions(newlines_in_values=True),
            )
        except (pa.ArrowInvalid, OSError, EOFError) as exc:
            raise RejectedInput("unreadable_csv", f"not a readable CSV file: {exc}") from exc
        row = 2
        batches: list[pa.RecordBatch] = []
        pending = 0
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                batch = None
            except (pa.ArrowInvalid, OSError, EOFError) as exc:
                raise RejectedInput("unreadable_csv", f"CSV is damaged near row {row + pending:,}: {exc}") from exc
            if batch is not None and batch.num_rows:
                batches.append(batch)
                pending += batch.num_rows
            if batches and (batch is None or pending >= CSV_CHUNK_ROWS):
                table = pa.Table.from_batches(batches)
                batches = []
                table = table.rename_columns([by_position[n] for n in table.column_names]).select(fields)
                yield Chunk("csv", row, table)
                del table
                row += pending
                pending = 0
            if batch is None:
                break
    finally:
        stream.close()


def _read_parquet(path: Path) -> Iterator[Chunk]:
    """Stream a Parquet file in batches of PARQUET_BATCH_ROWS rows, its own column types kept."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise RejectedInput("unreadable_parquet", f"not a readable Parquet file: {exc}") from exc
    mapping, missing = map_columns(pf.schema_arrow.names)
    if missing:
        raise RejectedInput("missing_columns", f"the Parquet file lacks the required columns {', '.join(missing)}")
    fields = _source_fields()
    row = 2
    try:
        for batch in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=list(mapping)):
            rows = batch.num_rows
            table = pa.Table.from_batches([batch]).rename_columns([mapping[n] for n in batch.schema.names])
            del batch
            yield Chunk("parquet", row, table.select(fields))
            del table
            row += rows
    except (pa.ArrowInvalid, OSError) as exc:
        raise RejectedInput("unreadable_parquet", f"Parquet file is damaged near row {row:,}: {exc}") from exc
    finally:
        pf.close()
