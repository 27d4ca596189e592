"""Put a workbook through ingest and load (the real stage functions, no transform): a batch that is
complete in the warehouse and waiting for its transform. Used by the dbt job and Cloud Run tests."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from helpers import good_row, write_workbook

#: six lines over two invoice months (Dec 2010 and Jan 2011), two customers, one cancellation
ROWS = [
    good_row(invoice=536365, stock=85123, qty=6, price=2.55, customer=17850, when=datetime(2010, 12, 1, 8, 26)),
    good_row(
        invoice=536365,
        stock="71053",
        qty=6,
        price=3.39,
        customer=17850,
        when=datetime(2010, 12, 1, 8, 26),
        description="WHITE METAL LANTERN",
    ),
    good_row(
        invoice=536366,
        stock="POST",
        qty=1,
        price=18.0,
        customer=17850,
        when=datetime(2010, 12, 1, 8, 28),
        description="POSTAGE",
    ),
    good_row(
        invoice=540001,
        stock="22633",
        qty=12,
        price=1.85,
        customer=13047,
        when=datetime(2011, 1, 4, 10, 0),
        description="HAND WARMER UNION JACK",
        country="France",
    ),
    good_row(
        invoice="C540002",
        stock="22633",
        qty=-2,
        price=1.85,
        customer=13047,
        when=datetime(2011, 1, 5, 9, 0),
        description="HAND WARMER UNION JACK",
        country="France",
    ),
    good_row(
        invoice=540003,
        stock="22632",
        qty=24,
        price=1.65,
        customer=17850,
        when=datetime(2011, 1, 9, 11, 30),
        description="HAND WARMER RED POLKA DOT",
    ),
]
MONTHS = ["2010-12", "2011-01"]


def ingest_and_load(
    ctx, tmp: Path, name: str = "small.xlsx", rows: list[list] | None = ROWS, path: Path | None = None
) -> str:
    """Drop a workbook (``path``, or one written from ``rows``) into the landing bucket as ``name``,
    ingest it and load every new lake object; returns the batch id."""
    from retail_pipeline.stages import ingest_landing_object, load_lake_object

    path = path or write_workbook(tmp / name, rows)
    seen = {(o.name, o.generation) for o in ctx.lake.list()}
    info = ctx.landing.put(name, path)
    result = ingest_landing_object(ctx.landing.bucket, name, info.generation)
    assert result["status"] == "ingested", result
    for obj in ctx.lake.list():
        if (obj.name, obj.generation) not in seen:
            load_lake_object(ctx.lake.bucket, obj.name, obj.generation)
    progress = ctx.warehouse.batch_progress(result["batch_id"])
    assert progress.complete, progress
    return result["batch_id"]
