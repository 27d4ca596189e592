"""`status --check` (issue 12): zero on a healthy home; non-zero on a dead letter, a failed dbt run
or a stuck batch, saying which and what to do."""

from __future__ import annotations

import json

from click.testing import CliRunner


def _check(home):
    from retail_pipeline.cli import cli

    result = CliRunner().invoke(cli, ["--home", str(home), "status", "--check"])
    as_json = CliRunner().invoke(cli, ["--home", str(home), "status", "--json"])
    return result.exit_code, result.output, json.loads(as_json.output)["attention"]


def test_status_check_healthy_then_dead_letter_stuck_and_failed(settings, ctx, small_workbook, monkeypatch):
    from retail_pipeline.pipeline import SUBSCRIPTION, run_local

    summary = run_local(settings, [(small_workbook, "book.xlsx")])
    [batch] = summary["batches"]
    code, out, items = _check(settings.home)
    assert (code, items) == (0, []), out
    assert "nothing needs attention" in out and "data as of" in out

    # a dead letter: a message the transform never accepted, through the spool's own redelivery
    bus = ctx.bus
    message_id = bus.publish(json.dumps({"batch_id": "0123456789abcdef"}).encode(), {"batch_id": "0123456789abcdef"})
    subscription = bus.subscribe(SUBSCRIPTION)
    while not subscription.is_dead_lettered(message_id):
        subscription.nack(message_id)
    code, out, items = _check(settings.home)
    assert code == 1
    assert [(a["kind"], a["subject"]) for a in items] == [("dead_letter", message_id)]
    assert "retail-pipeline replay 0123456789abcdef --messages-only" in out

    # a stuck batch: complete but its claim lost, for longer than the grace period (0 s here)
    (bus.dead / f"{message_id}.json").unlink()
    ctx.warehouse.release_transform(batch["batch_id"], "initial")
    assert _check(settings.home)[0] == 0  # within the default 15 min grace
    monkeypatch.setenv("RETAIL_PIPELINE_SWEEP_GRACE_SECONDS", "0")
    code, out, items = _check(settings.home)
    assert code == 1 and [(a["kind"], a["subject"]) for a in items] == [("stuck_batch", batch["batch_id"])]
    assert "retail-pipeline sweep" in out
    monkeypatch.delenv("RETAIL_PIPELINE_SWEEP_GRACE_SECONDS")

    # a failed dbt run: the production freshness limit (a tiny one) fails the data test
    failing = settings.with_changes(max_data_age_hours=0.00001)
    from retail_pipeline.sweep import sweep

    sweep(ctx, grace_seconds=0)
    from ops_helpers import drive

    drive(failing)
    code, out, items = _check(settings.home)
    assert code == 1
    assert [(a["kind"], a["subject"]) for a in items] == [("failed_run", batch["batch_id"])], out
    assert "freshness" in out and f"retail-pipeline replay {batch['batch_id']}" in out
