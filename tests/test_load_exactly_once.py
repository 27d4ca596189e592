"""Loads have exactly-once effect: repeats, late events, new generations, several sources."""

from __future__ import annotations

from datetime import datetime

import duckdb

from helpers import good_row, write_workbook
from retail_pipeline.stages import ingest_landing_object, load_lake_object


def drop_and_ingest(ctx, name: str, path) -> dict:
    info = ctx.landing.put(name, path)
    return ingest_landing_object(info.bucket, name, info.generation)


def load_all(ctx, batch_id: str | None = None) -> list[dict]:
    out = []
    for obj in ctx.lake.list():
        if batch_id is None or obj.metadata.get("batch_id") == batch_id:
            out.append(load_lake_object(obj.bucket, obj.name, obj.generation))
    return out


def raw_state(ctx) -> tuple:
    con = duckdb.connect(str(ctx.warehouse.path), read_only=True)
    try:
        lines = con.execute(
            "SELECT source_uri, source_generation, count(*), sum(quantity * unit_price) "
            "FROM raw.sales_lines GROUP BY ALL ORDER BY ALL"
        ).fetchall()
        ledger = con.execute("SELECT batch_id, kind, partition, rows FROM pipeline.load_ledger ORDER BY ALL").fetchall()
        batches = con.execute("SELECT batch_id FROM raw.batches ORDER BY 1").fetchall()
    finally:
        con.close()
    return lines, ledger, batches


def test_same_event_twice_changes_nothing(ctx, small_workbook):
    result = drop_and_ingest(ctx, "book.xlsx", small_workbook)
    first = load_all(ctx)
    state = raw_state(ctx)
    again = load_all(ctx)
    assert {r["status"] for r in first} == {"loaded"}
    assert {r["status"] for r in again} == {"already_loaded"}
    assert raw_state(ctx) == state
    assert state[0][0][2] == result["rows"]["loaded"]


def test_new_generation_replaces_the_source_and_late_old_events_are_ignored(ctx, tmp_path):
    old = write_workbook(
        tmp_path / "old.xlsx", [good_row(when=datetime(2011, 1, 5)), good_row(stock=2, when=datetime(2011, 2, 5))]
    )
    new = write_workbook(tmp_path / "new.xlsx", [good_row(stock=3, qty=1, when=datetime(2011, 3, 5))])
    first = drop_and_ingest(ctx, "book.xlsx", old)
    old_objects = [o for o in ctx.lake.list() if o.metadata.get("batch_id") == first["batch_id"]]
    load_all(ctx, first["batch_id"])
    second = drop_and_ingest(ctx, "book.xlsx", new)
    load_all(ctx, second["batch_id"])
    lines, ledger, batches = raw_state(ctx)
    assert len(lines) == 1 and lines[0][2] == 1  # only the new generation's single line
    assert {b for (b,) in batches} == {second["batch_id"]}
    # a late redelivery of an old partition event: superseded, nothing changes
    late = [load_lake_object(o.bucket, o.name, o.generation) for o in old_objects]
    assert {r["status"] for r in late} == {"superseded"}
    assert raw_state(ctx) == (lines, ledger, batches)


def test_different_landing_objects_add_up(ctx, tmp_path):
    a = write_workbook(tmp_path / "a.xlsx", [good_row(stock=1)])
    b = write_workbook(tmp_path / "b.xlsx", [good_row(stock=2), good_row(stock=3)])
    for name, path in (("a.xlsx", a), ("b.xlsx", b)):
        load_all(ctx, drop_and_ingest(ctx, name, path)["batch_id"])
    lines, _, batches = raw_state(ctx)
    assert sorted(n for _, _, n, _ in lines) == [1, 2]
    assert len(batches) == 2


def test_publish_after_load_carries_the_batch(ctx, small_workbook):
    result = drop_and_ingest(ctx, "book.xlsx", small_workbook)
    load_all(ctx)
    messages = ctx.bus.subscribe("transform").pull()
    assert {m.attributes["batch_id"] for m in messages} == {result["batch_id"]}
    kinds = sorted(m.attributes["kind"] for m in messages)
    assert kinds.count("manifest") == 1 and kinds.count("sales") == result["partitions"]
    assert (
        sum(int(m.attributes["rows"]) for m in messages if m.attributes["kind"] == "sales") == result["rows"]["loaded"]
    )
