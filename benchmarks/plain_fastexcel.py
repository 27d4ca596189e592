"""Baseline (a): read a workbook's first sheet with fastexcel (calamine) into Arrow; nothing else.

The fastest reasonable plain read, as `retail-pipeline bench` measures it: ``load_sheet`` of the
whole sheet with the identifier columns pinned to text (type guessing from the first rows breaks
on codes like '85123A'), then ``to_arrow()``. ``--eager`` uses fastexcel's eager mode instead
(Arrow built straight from the parsed cells), the read the project's ingest uses.

    python benchmarks/plain_fastexcel.py WORKBOOK [--eager]
"""

from __future__ import annotations

import sys

#: identifier columns as text, in both the Online Retail and the Online Retail II spellings
ID_DTYPES = {
    "InvoiceNo": "string",
    "Invoice": "string",
    "StockCode": "string",
    "CustomerID": "string",
    "Customer ID": "string",
}


def read(path: str, eager: bool = False) -> int:
    """Rows read from the first sheet."""
    import fastexcel

    reader = fastexcel.read_excel(path)
    if eager:
        return reader.load_sheet(0, dtypes=ID_DTYPES, eager=True).num_rows
    return reader.load_sheet(0, dtypes=ID_DTYPES).to_arrow().num_rows


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    rows = read(argv[0], eager="--eager" in argv[1:])
    print(f"read {rows:,} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
