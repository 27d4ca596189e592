"""Writing the sample generator's sheets to a file: xlsx (sample_xlsx.py), or one Arrow table as CSV,
gzipped CSV or Parquet."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from .sample_xlsx import _write_xlsx


def write_sheets(out: Path, fmt: str, headers: list[str], sheets: list[tuple[str, dict]]) -> None:
    """Write the (sheet name, column arrays) pairs to `out` in `fmt` (xlsx, csv, csv.gz or parquet)."""
    if fmt == "xlsx":
        _write_xlsx(out, headers, sheets)
    else:
        table = pa.concat_tables([_to_arrow(headers, cols) for _, cols in sheets])
        if fmt == "parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, out)
        else:
            import pyarrow.csv as pacsv

            if fmt == "csv.gz":
                with pa.CompressedOutputStream(str(out), "gzip") as sink:
                    pacsv.write_csv(table, sink)
            else:
                pacsv.write_csv(table, out)


def _to_arrow(headers: list[str], cols: dict) -> pa.Table:
    def text(values):
        return pa.array([None if v is None else str(v) for v in values], pa.string())

    return pa.table(
        {
            headers[0]: text(cols["invoice"]),
            headers[1]: text(cols["stock"]),
            headers[2]: pa.array(list(cols["desc"]), pa.string()),
            headers[3]: pa.array([int(v) for v in cols["qty"]], pa.int64()),
            headers[4]: pa.array(list(cols["when"]), pa.timestamp("s")),
            headers[5]: pa.array([float(v) for v in cols["price"]], pa.float64()),
            headers[6]: pa.array([None if v is None else float(v) for v in cols["customer"]], pa.float64()),
            headers[7]: pa.array(list(cols["country"]), pa.string()),
        }
    )
