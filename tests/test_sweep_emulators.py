"""The sweep on the emulator chain (issue 12), behind the strict IAM layer and acting as the sweep's
Terraform service account: a landing object whose finalize event was lost is loaded by the sweep;
a sweep racing the events, or run twice, changes nothing."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.emulator


@pytest.mark.chain
def test_a_landing_object_whose_event_is_lost_is_loaded_by_the_sweep(emulators, emulator_env, tmp_path, small_workbook):
    from retail_pipeline.chain import Chain, emulator_settings
    from retail_pipeline.context import Context
    from retail_pipeline.lake import batch_id_for
    from retail_pipeline.status import collect
    from retail_pipeline.sweep import sweep

    chain = Chain(emulator_settings(tmp_path / "home", emulators, suffix="-sweep"), emulators).start()
    try:
        assert chain.runtime is not None and chain.strict is not None and chain.strict.policy is not None
        lost = chain.ctx.landing.put("lost.xlsx", small_workbook)
        chain.runtime.eventarc.mark_seen()  # Eventarc took the generation as delivered: its event is lost
        chain.runtime.run_until_idle(timeout=60)
        assert collect(chain.ctx)["batches"] == []

        account = chain.strict.policy.resources.principals["sweep"]
        as_sweep = Context(chain.settings.with_changes(identity=account))
        racing = sweep(as_sweep)  # within the grace period an event may still come: nothing is done
        assert [(f.kind, f.subject, f.action) for f in racing.findings] == [
            ("landing_without_batch", "lost.xlsx", "none")
        ]
        assert chain.ctx.landing.stat("lost.xlsx").generation == lost.generation

        report = sweep(as_sweep, grace_seconds=0)
        assert [(f.kind, f.subject, f.action) for f in report.findings] == [
            ("landing_without_batch", "lost.xlsx", "rewritten")
        ]
        new = chain.ctx.landing.stat("lost.xlsx")
        assert new.generation > lost.generation and new.md5_hash == lost.md5_hash
        batch_id = batch_id_for(chain.ctx.landing.uri("lost.xlsx"), new.generation)
        final = chain.wait_for_batches([batch_id], timeout=300)
        [batch] = final["batches"]
        assert batch["state"] == "transformed", batch
        assert final["warehouse"]["fact_rows"] == batch["rows"]["loaded"] > 0
        assert chain.runtime.stats.dead_letters == []

        # a second sweep finds nothing to do and changes nothing
        assert sweep(as_sweep, grace_seconds=0).findings == []
        chain.runtime.run_until_idle(timeout=60)
        again = collect(chain.ctx)
        assert again["warehouse"] == final["warehouse"] and again["dbt"]["runs"] == final["dbt"]["runs"]
        assert [b["batch_id"] for b in again["batches"]] == [batch_id]
    finally:
        chain.stop()
