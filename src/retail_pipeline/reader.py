"""Readers: a landing object → chunks of the eight source columns as Arrow.

The one entry point, :func:`read_source`, checks the object's size, tells the format from the
content (the name only as a fallback) and hands the file to its reader: workbooks with
fastexcel (excel_reader.py), every sheet that carries the columns, one chunk per sheet; CSV
(plain or gzip) and Parquet streamed in bounded batches (stream_reader.py). What a reader
yields, and the error for a file that cannot be ingested, are in chunk.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from . import excel_reader, stream_reader
from .chunk import Chunk, RejectedInput
from .config import Limits

__all__ = ["Chunk", "RejectedInput", "check_object_size", "read_source", "sniff"]


def check_object_size(size: int, limits: Limits) -> None:
    """Raise RejectedInput('object_too_large') for a landing object bigger than the limit."""
    if size > limits.max_object_bytes:
        raise RejectedInput("object_too_large", f"object is {size:,} bytes; the limit is {limits.max_object_bytes:,}")


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
        raise RejectedInput(
            "not_a_workbook", f"{name} is named like a workbook but is not one (no zip or OLE signature)"
        )
    if lower.endswith(".csv"):
        return "csv"
    raise RejectedInput("unsupported_format", f"{name}: not an Excel workbook, CSV or Parquet file")


def read_source(path: Path, name: str, limits: Limits) -> Iterator[Chunk]:
    """Chunks of a landing file; raises RejectedInput for a file that cannot be ingested."""
    check_object_size(path.stat().st_size, limits)
    kind = sniff(path, name)
    if kind == "xlsx":
        yield from excel_reader.read_xlsx(path, limits)
    elif kind == "xls":
        yield from excel_reader.read_xls(path)
    elif kind in ("csv", "csv.gz"):
        yield from stream_reader.read_csv(path, gzipped=kind == "csv.gz")
    else:
        yield from stream_reader.read_parquet(path)
