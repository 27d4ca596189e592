"""Baseline (b): the usual approach, as in the original Mage project.

pandas.read_excel (openpyxl), then the project's cleaning: column names to snake case, lower
case; drop_duplicates; fillna; drop the bad-debt rows (description contains "debt") and the
rows with quantity <= 0; then a month-partitioned Parquet write with pyarrow.

    python benchmarks/pandas_openpyxl.py WORKBOOK OUT_DIR
"""

from __future__ import annotations

import re
import sys


def snake(name: str) -> str:
    """'InvoiceNo' → 'invoice_no', 'Customer ID' → 'customer_id'."""
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", str(name).strip())
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()


def run(path: str, out_dir: str) -> int:
    """Rows written."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    df = pd.read_excel(path, engine="openpyxl", dtype={"InvoiceNo": str, "StockCode": str})
    df.columns = [snake(c) for c in df.columns]
    df = df.drop_duplicates()
    df = df.fillna({"description": "unknown", "customer_id": 0, "country": "unknown"})
    df = df[~df["description"].astype(str).str.contains("debt", case=False)]
    df = df[df["quantity"] > 0]
    df["invoice_month"] = pd.to_datetime(df["invoice_date"]).dt.strftime("%Y-%m")
    table = pa.Table.from_pandas(df, preserve_index=False)
    pq.write_to_dataset(table, out_dir, partition_cols=["invoice_month"])
    return table.num_rows


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    rows = run(argv[0], argv[1])
    print(f"wrote {rows:,} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
