"""The whole chain on the emulators, over HTTP: functions-framework servers, a dispatcher playing
Eventarc, Pub/Sub push to the transform function, BigQuery loads and dbt-bigquery.

The embedded chain on the same workbook is the reference: the fact table must hold the same
rows and net amount. A run where every storage event is delivered twice, in shuffled order (the
session's shared ``emulator_run``, tests/analytics_fixtures.py), must give the same warehouse; so
must a Pub/Sub replay by seek after the transform's result is lost.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest

pytestmark = pytest.mark.emulator


def expected_net(lake_store, batch_id: str):
    """Sum of quantity * unit_price over the batch's lake partitions, computed here with Arrow."""
    import io

    import pyarrow.parquet as pq

    total, rows = Decimal(0), 0
    for info in lake_store.list("sales/"):
        if info.metadata.get("batch_id") != batch_id:
            continue
        table = pq.read_table(io.BytesIO(lake_store.read_bytes(info.name)))
        rows += table.num_rows
        for q, p in zip(table["quantity"].to_pylist(), table["unit_price"].to_pylist()):
            total += q * p
    return rows, total


@pytest.mark.chain
def test_emulator_chain_matches_embedded_and_replays_by_seek(
    emulators, emulator_env, tmp_path, small_workbook, embedded_reference, monkeypatch
):
    from retail_pipeline.chain import Chain, emulator_settings
    from retail_pipeline.lake import batch_id_for
    from retail_pipeline.status import batch_state, collect

    settings = emulator_settings(tmp_path / "home", emulators, suffix="-once")
    chain = Chain(settings, emulators).start()
    try:
        assert chain.subscription.endswith("/subscriptions/transform-once")
        before_upload = datetime.now(UTC)
        info = chain.ctx.landing.put("small.xlsx", small_workbook)
        batch_id = batch_id_for(chain.ctx.landing.uri("small.xlsx"), info.generation)
        report = chain.wait_for_batches([batch_id], timeout=300)
        [batch] = report["batches"]
        assert batch["state"] == "transformed", batch
        assert chain.runtime.stats.dead_letters == []
        # the same figures as the embedded chain, and as the lake's own partitions
        assert report["warehouse"] == embedded_reference["warehouse"]
        rows, net = expected_net(chain.ctx.lake, batch_id)
        assert report["warehouse"]["fact_rows"] == rows == batch["rows"]["loaded"]
        assert Decimal(report["warehouse"]["net_amount"]) == net
        assert report["dbt"]["status"] == "success" and report["dbt"]["tests_failed"] == 0

        # Pub/Sub replay: lose the transform's claim, then seek the push subscription back to before
        # the run; the retained messages come again and the batch is transformed again, same figures
        chain.ctx.warehouse.release_transform(batch_id, "initial")
        assert collect(chain.ctx)["batches"][0]["state"] == "loaded"
        chain.ctx.bus.seek(chain.subscription, to=before_upload)
        deadline = time.monotonic() + 180
        while [batch_state(r) for r in chain.ctx.warehouse.batch_records()] != ["transformed"]:
            assert time.monotonic() < deadline, "the seek did not replay the messages"
            time.sleep(2)  # each look is a BigQuery job
        again = collect(chain.ctx)
        assert again["warehouse"] == report["warehouse"]
        assert again["dbt"]["runs"] == 1 and again["dbt"]["status"] == "success"
    finally:
        chain.stop()


def test_every_event_twice_and_shuffled_gives_the_same_warehouse(emulator_run, embedded_reference, monkeypatch):
    """The shared emulator run (tests/analytics_fixtures.py) had every storage event twice, shuffled."""
    import json

    from click.testing import CliRunner

    from retail_pipeline.cli import cli

    summary, home = emulator_run.summary, emulator_run.home
    assert summary["ok"], summary
    assert summary["warehouse"] == embedded_reference["warehouse"]
    [batch] = summary["batches"]
    partitions = batch["partitions"]
    # ingest got the landing event twice; load got every lake object (partitions + manifest) at least
    # twice (more when the second ingest rewrote an object after its first generation was seen)
    assert summary["deliveries"]["ingest"] == 2
    assert summary["deliveries"]["load"] >= 2 * (partitions + 1)
    assert summary["dbt"]["runs"] == 1  # one transform for the batch, whatever the redeliveries

    # the home records its chain: `status --json` reads BigQuery, not a DuckDB file
    monkeypatch.setenv("RETAIL_PIPELINE_HOME", str(home))  # the CLI sets these; restore them after
    monkeypatch.setenv("RETAIL_PIPELINE_FAULT_STATE", str(home / "faults"))
    for key, value in emulator_run.env.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(cli, ["--home", str(home), "status", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["warehouse_url"] == str(emulator_run.settings.warehouse) == "bigquery://retail-local/retail_an"
    assert report["warehouse"] == summary["warehouse"]
    assert [b["state"] for b in report["batches"]] == ["transformed"]


def tmp_path_settings(tmp_path):
    from retail_pipeline.config import Settings

    return Settings.from_env(tmp_path / "home")


@pytest.mark.chain
def test_twenty_drops_at_once_on_the_emulators(emulators, emulator_env, tmp_path):
    """20 workbooks dropped together: every batch once in the fact, dbt runs not one per event."""
    from datetime import datetime

    from helpers import good_row, write_workbook
    from retail_pipeline.chain import run_on_emulators

    files, expected = [], set()
    for i in range(20):
        rows = [
            good_row(invoice=600000 + i, stock=10000 + 10 * i + j, qty=j + 1, when=datetime(2011, 5, 2, 10, i))
            for j in range(3)
        ]
        rows.append(good_row(invoice=599999, stock=99999, when=datetime(2011, 5, 1, 9, 0)))  # the same line in all
        path = write_workbook(tmp_path / f"drop_{i:02d}.xlsx", rows)
        files.append((path, path.name))
        expected |= {(r[0], r[1], r[3]) for r in rows}
    summary = run_on_emulators(tmp_path_settings(tmp_path), files, emulators=emulators, suffix="-twenty", timeout=600)
    assert summary["ok"], summary["dead_letters"]
    assert len(summary["batches"]) == 20 and {b["state"] for b in summary["batches"]} == {"transformed"}
    assert summary["warehouse"]["fact_rows"] == len(expected) == 61  # 20 x 3 lines + the shared one, once
    assert Decimal(summary["warehouse"]["net_amount"]) == sum(Decimal("2.55") * q for _, _, q in expected)
    # a dbt run starts only after claiming at least one new batch, and each batch is claimed once:
    # so there are at most 20 dbt runs, whatever the 20 x 2 messages and their redeliveries
    assert summary["dbt"]["runs"] == 20  # claim rows: one per batch
