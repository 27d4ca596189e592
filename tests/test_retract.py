"""Mistakes undone (issue 12): `retract` and a deleted landing object take a source back out; the
fact, every mart and the reconciliation tests then agree with a warehouse that never saw it.
`reprocess` after a rule change gives the figures of a fresh run under the new rule."""

from __future__ import annotations

import duckdb
from click.testing import CliRunner

from ops_helpers import analytics, drive, sample


def _run(settings, files):
    from retail_pipeline.pipeline import run_local

    summary = run_local(settings, files)
    assert summary["ok"], summary
    return summary


def test_retract_then_delete_agree_with_warehouses_that_never_saw_them(tmp_path, settings, small_workbook):
    from retail_pipeline.cli import cli
    from retail_pipeline.config import Settings
    from retail_pipeline.context import Context
    from retail_pipeline.status import collect

    other = sample(tmp_path / "other.xlsx", rows=1500, seed=11)
    _run(settings, [(small_workbook, "keep.xlsx"), (other, "mistake.xlsx")])
    ctx = Context(settings)
    mistake_uri = ctx.landing.uri("mistake.xlsx")
    lake_before = sorted(i.name for i in ctx.lake.list())

    result = CliRunner().invoke(cli, ["--home", str(settings.home), "retract", mistake_uri, "--why", "wrong shop"])
    assert result.exit_code == 0, result.output
    report = collect(ctx)
    states = {b["source"].rsplit("/", 1)[-1]: b["state"] for b in report["batches"]}
    assert states == {"keep.xlsx": "transformed", "mistake.xlsx": "retracted"}
    assert report["dbt"]["status"] == "success" and report["dbt"]["tests_failed"] == 0
    assert sorted(i.name for i in ctx.lake.list()) == lake_before  # the lake files stay
    con = duckdb.connect(str(settings.warehouse_url.path), read_only=True)
    audit = con.execute("SELECT source_uri, rows_removed, retracted_by, reason FROM pipeline.retractions").fetchall()
    con.close()
    [mistake] = [b for b in collect(ctx)["batches"] if b["source"] == mistake_uri]
    assert [(a[0], a[3]) for a in audit] == [(mistake_uri, "wrong shop")] and audit[0][1] > 0 and audit[0][2]

    # a warehouse that only ever got keep.xlsx
    fresh = Settings.from_env(tmp_path / "fresh")
    _run(fresh, [(small_workbook, "keep.xlsx")])
    assert collect(Context(fresh))["warehouse"] == report["warehouse"]
    assert analytics(fresh) == analytics(settings)

    # a redelivered event, a replayed load or a sweep does not bring it back; retracting again removes nothing
    from retail_pipeline.sweep import sweep

    assert sweep(ctx, grace_seconds=0).findings == []
    again = CliRunner().invoke(cli, ["--home", str(settings.home), "retract", mistake["batch_id"]])
    assert again.exit_code == 0 and "already retracted" in again.output

    # deleting keep.xlsx from the landing bucket retracts it too (the archived event, then a rebuild)
    ctx.landing.delete("keep.xlsx")
    drive(settings)
    report = collect(ctx)
    assert {b["state"] for b in report["batches"]} == {"retracted"}
    assert report["warehouse"] == {"fact_rows": 0, "net_amount": "0.00"}
    assert report["dbt"]["status"] == "success"
    status = CliRunner().invoke(cli, ["--home", str(settings.home), "status", "--check"])
    assert status.exit_code == 0, status.output


def test_reprocess_after_a_rule_change_equals_a_fresh_run_under_the_new_rule(tmp_path, settings, small_workbook):
    from retail_pipeline.config import Limits, Settings
    from retail_pipeline.context import Context
    from retail_pipeline.retract import reprocess
    from retail_pipeline.status import collect

    _run(settings, [(small_workbook, "book.xlsx")])
    before = collect(Context(settings))
    assert before["batches"][0]["rows"]["quarantined"] == 0
    strict = Limits(max_cell_chars=12)  # today's rule: long descriptions are quarantined
    new_settings = settings.with_changes(limits=strict)
    ctx = Context(new_settings)
    done = reprocess(ctx, source="book.*")
    assert [d["object"] for d in done] == ["book.xlsx"] and done[0]["new_generation"] > done[0]["old_generation"]
    drive(new_settings)
    after = collect(ctx)
    old, new = after["batches"]  # the new generation's load replaced the old batch's rows
    assert (old["state"], old["source_generation"]) == ("superseded", done[0]["old_generation"])
    assert (new["state"], new["source_generation"]) == ("transformed", done[0]["new_generation"])
    assert new["rows"]["quarantined"] > 0

    fresh = Settings.from_env(tmp_path / "fresh").with_changes(limits=strict)
    _run(fresh, [(small_workbook, "book.xlsx")])
    expected = collect(Context(fresh))
    assert after["warehouse"] == expected["warehouse"] != before["warehouse"]
    assert new["rows"] == expected["batches"][0]["rows"]
    assert analytics(fresh) == analytics(new_settings)
