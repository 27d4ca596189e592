"""A deleted landing object whose retraction committed but whose rebuild message never went out (the
load function failed in between) is rebuilt when Eventarc delivers the archived event again; a further
delivery, once a rebuild was asked for, changes nothing (embedded chain)."""

from __future__ import annotations

from ops_helpers import analytics, drive, sample


def test_a_lost_rebuild_message_is_sent_again_by_the_redelivered_event(tmp_path, settings, small_workbook, small_home):
    from retail_pipeline import context
    from retail_pipeline.config import Faults, Settings
    from retail_pipeline.context import Context
    from retail_pipeline.lake import batch_id_for
    from retail_pipeline.pipeline import run_local
    from retail_pipeline.retract import landing_object_removed
    from retail_pipeline.status import collect

    mistake = sample(tmp_path / "mistake.xlsx", rows=400, seed=21)
    summary = run_local(settings, [(small_workbook, "small.xlsx"), (mistake, "mistake.xlsx")])
    assert summary["ok"], summary
    ctx = Context(settings)
    generation = ctx.landing.stat("mistake.xlsx").generation
    batch_id = batch_id_for(ctx.landing.uri("mistake.xlsx"), generation)

    # the first delivery of the archived event commits the retraction, then fails before publishing
    crashing = settings.with_changes(faults=Faults(crash=("retract.publish",), state=settings.faults.state))
    ctx.landing.delete("mistake.xlsx")
    drive(crashing)
    assert len(list(settings.faults.state.iterdir())) == 1  # the fault fired once; the retry went through
    report = collect(ctx)
    states = {b["source"].rsplit("/", 1)[-1]: b["state"] for b in report["batches"]}
    assert states == {"small.xlsx": "transformed", "mistake.xlsx": "retracted"}
    rebuilds = [r for r in ctx.warehouse.runs() if r["batch_id"] == batch_id]
    assert [(r["claim_key"], r["state"]) for r in rebuilds] == [
        ("initial", "success"),
        (f"retract-{batch_id}", "success"),
    ]
    assert (report["dbt"]["status"], report["dbt"]["tests_failed"]) == ("success", 0)

    # the marts equal those of a warehouse that only ever got small.xlsx
    kept = Settings.from_env(small_home, environ={})
    assert report["warehouse"] == collect(Context(kept))["warehouse"]
    assert analytics(settings) == analytics(kept)

    # once a rebuild was asked for, another delivery of the same event asks for nothing
    runs = ctx.warehouse.runs()
    context.use(ctx)
    try:
        again = landing_object_removed(ctx.landing.bucket, "mistake.xlsx", generation)  # what the load function runs
    finally:
        context.use(None)
    assert again == {"status": "already_retracted", "object": "mistake.xlsx"}
    drive(settings)
    assert ctx.warehouse.runs() == runs
