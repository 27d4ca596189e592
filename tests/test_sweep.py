"""The sweep (issue 12): what the events missed is re-driven; a second sweep, or one racing the
events, changes nothing. Embedded chain (folders, DuckDB, spool bus)."""

from __future__ import annotations

import shutil

from ops_helpers import drive


def _states(ctx) -> dict[str, str]:
    from retail_pipeline.status import collect

    return {b["source"].rsplit("/", 1)[-1]: b["state"] for b in collect(ctx)["batches"]}


def test_a_workbook_copied_in_while_nothing_ran_is_loaded_by_the_next_run(settings, ctx, small_workbook):
    from retail_pipeline.pipeline import run_local
    from retail_pipeline.status import collect
    from retail_pipeline.sweep import sweep

    landing = settings.home / "buckets" / "landing"
    landing.mkdir(parents=True)
    shutil.copy(small_workbook, landing / "by_hand.xlsx")  # no event was ever emitted for it
    summary = run_local(settings, [])
    report = collect(ctx)
    [batch] = report["batches"]
    assert batch["source"].endswith("/by_hand.xlsx") and batch["state"] == "transformed"
    assert report["warehouse"]["fact_rows"] == batch["rows"]["loaded"] > 0
    assert summary["dead_letters"] == []
    # a second sweep finds nothing and changes nothing
    again = sweep(ctx, grace_seconds=0)
    assert again.findings == []
    assert collect(ctx)["warehouse"] == report["warehouse"]


def test_a_sweep_within_the_grace_period_leaves_a_fresh_drop_to_its_event(settings, ctx, small_workbook):
    from retail_pipeline.sweep import sweep

    ctx.provision()
    info = ctx.landing.put("fresh.xlsx", small_workbook)
    report = sweep(ctx)  # default grace: 900 s
    [finding] = report.findings
    assert (finding.kind, finding.subject, finding.action) == ("landing_without_batch", "fresh.xlsx", "none")
    assert ctx.landing.stat("fresh.xlsx").generation == info.generation  # not rewritten
    assert report.redriven == []


def test_lost_loads_an_unclaimed_batch_and_a_stuck_run_are_redriven_once(settings, ctx, small_workbook):
    from retail_pipeline.pipeline import run_local
    from retail_pipeline.status import collect
    from retail_pipeline.sweep import stuck_claim_key, sweep

    run_local(settings, [(small_workbook, "book.xlsx")])
    context_report = collect(ctx)
    [batch] = context_report["batches"]
    batch_id = batch["batch_id"]
    figures = context_report["warehouse"]

    # 1. the transform's claim is lost (a crash between claim and record): complete, never claimed
    ctx.warehouse.release_transform(batch_id, "initial")
    assert _states(ctx) == {"book.xlsx": "loaded"}
    dry = sweep(ctx, grace_seconds=0, dry_run=True)
    assert [(f.kind, f.action) for f in dry.findings] == [("batch_never_claimed", "none")]
    first = sweep(ctx, grace_seconds=0)
    second = sweep(ctx, grace_seconds=0)  # before anything ran: the same claim key, so still one run
    assert [(f.kind, f.action) for f in first.findings] == [("batch_never_claimed", "published")]
    assert [(f.kind, f.action) for f in second.findings] == [("batch_never_claimed", "published")]
    drive(settings)
    runs = [r for r in ctx.warehouse.runs() if r["batch_id"] == batch_id]
    assert [(r["claim_key"], r["state"]) for r in runs] == [("initial", "success")]
    assert collect(ctx)["warehouse"] == figures

    # 2. a claim whose run never finished (the process died during dbt)
    assert ctx.warehouse.claim_transform(batch_id, "stuck")
    assert _states(ctx) == {"book.xlsx": "transforming"}
    young = sweep(ctx)  # within the grace period: left alone
    assert [(f.kind, f.action) for f in young.findings] == [("run_never_finished", "none")]
    # past the grace period but within the run timeout, the dbt run may still be going: left alone
    running = sweep(ctx, grace_seconds=0)
    assert [(f.kind, f.action) for f in running.findings] == [("run_never_finished", "none")]
    assert "run timeout" in running.findings[0].detail
    sweep(ctx, grace_seconds=0, run_timeout_seconds=0)
    sweep(ctx, grace_seconds=0, run_timeout_seconds=0)
    drive(settings)
    keys = [(r["claim_key"], r["state"]) for r in ctx.warehouse.runs() if r["batch_id"] == batch_id]
    assert keys[-1] == (stuck_claim_key("stuck"), "success") and len(keys) == 3
    assert _states(ctx) == {"book.xlsx": "transformed"}

    # 3. a lake object's load is lost: its ledger row and raw rows are gone, the lake file is there
    import duckdb

    month = next(p for (k, p) in sorted(next(iter(ctx.warehouse.batch_records())).loaded) if k == "sales")
    con = duckdb.connect(str(settings.warehouse_url.path))
    lost = con.execute(
        "SELECT count(*) FROM raw.sales_lines WHERE strftime(invoice_month, '%Y-%m') = ?", [month]
    ).fetchone()[0]
    con.execute("DELETE FROM raw.sales_lines WHERE strftime(invoice_month, '%Y-%m') = ?", [month])
    con.execute("DELETE FROM pipeline.load_ledger WHERE partition = ?", [month])
    con.close()
    assert lost > 0 and _states(ctx) == {"book.xlsx": "transformed"}
    report = sweep(ctx, grace_seconds=0)
    assert [(f.kind, f.subject, f.action) for f in report.findings] == [
        ("lake_object_not_loaded", f"sales/month={month}/{batch_id}.parquet", "rewritten")
    ]
    drive(settings)
    con = duckdb.connect(str(settings.warehouse_url.path), read_only=True)
    assert (
        con.execute(
            "SELECT count(*) FROM raw.sales_lines WHERE strftime(invoice_month, '%Y-%m') = ?", [month]
        ).fetchone()[0]
        == lost
    )
    con.close()
    assert sweep(ctx, grace_seconds=0).findings == []
    assert collect(ctx)["warehouse"] == figures
