"""Mistakes undone on the strict emulator chain (issue 12): BigQuery's `retract`, and a landing object
deleted in the versioned landing bucket (Eventarc's ``object.v1.archived`` event → the load function).

One chain run, each component as its Terraform identity behind the strict layer (four dbt builds):

1. ``small.xlsx`` and ``mistake.xlsx`` are loaded and transformed;
2. ``retract BATCH_ID`` of the mistake, from the command line as the deployer (who runs the CLI in
   GCP): the fact, every mart, the dimensions and the dbt tests then equal the embedded chain's run
   of ``small.xlsx`` alone; retracting its source URI again removes nothing;
3. a person deletes ``small.xlsx`` from the landing bucket: its archived event reaches the load
   function, which retracts the source by URI as the load account and asks the transform (a message)
   for the rebuild; then the fact and every mart are empty, as in a warehouse that never saw either.

Each retraction has its audit row (who, when, why), the lake keeps every file, the sweep finds
nothing to re-drive, no call was refused and docs/deploy.md lists every permission used.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from ops_helpers import sample
from retail_pipeline.chain import POLL_SECONDS  # between two looks at the warehouse, as the chain's own waits

pytestmark = pytest.mark.emulator

REPO = Path(__file__).resolve().parents[1]
#: columns that name the run, batch or source a row came from (the two chains differ there by design),
#: and line_id, a hash of the line's columns cast to text, which each warehouse spells its own way
RUN_COLUMNS = {
    "line_id",
    "batch_id",
    "source_uri",
    "source_generation",
    "ingested_at",
    "dbt_invocation_id",
    "transform_batch_id",
}
MODELS = ("fct_sales_lines", "dim_customers", "dim_products")


def _plain(value):
    """A DataFrame cell as a comparable Python value (floats to 12 significant digits)."""
    import numpy as np
    import pandas as pd

    if value is None or (not isinstance(value, (str, Decimal)) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return float(f"{value:.12g}")
    return value


def _relations(settings) -> dict[str, list[tuple]]:
    """Every mart, the fact and the dimensions: rows without the run columns, sorted."""
    from retail_pipeline.adapters import open_warehouse
    from retail_pipeline.analytics import marts

    warehouse = open_warehouse(settings)
    out = {}
    for name in [m.name for m in marts(project_dir=settings.dbt_project)] + list(MODELS):
        frame = warehouse.read_relation(name)
        frame = frame[[c for c in frame.columns if c not in RUN_COLUMNS]]
        out[name] = sorted(
            (tuple(_plain(v) for v in row) for row in frame.itertuples(index=False, name=None)), key=repr
        )
    return out


def _until(chain, look, done, what: str, timeout: float = 900.0):
    """What ``look()`` returns once ``done`` holds for it, stepping the chain meanwhile (Pub/Sub
    pushes by itself). Each look is a query (on BigQuery, a job), made as often as the chain's own
    waits make it (Chain.look_due)."""
    deadline = time.monotonic() + timeout
    looked, seen = 0.0, None
    while True:
        if chain.look_due(looked):
            looked = time.monotonic()
            seen = look()
            if done(seen):
                return seen
        assert time.monotonic() < deadline, f"{what} after {timeout:.0f} s: {seen}"
        chain.runtime.step()
        time.sleep(POLL_SECONDS)


def _settle(chain, done, what: str, timeout: float = 900.0):
    """Deliver storage events and wait until ``done(states)`` holds for the batches' sorted states;
    then the whole status."""
    from retail_pipeline.status import batch_state, collect

    chain.runtime.run_until_idle(timeout=timeout)
    _until(chain, lambda: sorted(batch_state(r) for r in chain.ctx.warehouse.batch_records()), done, what, timeout)
    return collect(chain.ctx)


def _finished(chain, claim_key: str, timeout: float = 900.0) -> list[dict]:
    """The transform runs of a claim key once the job recorded their outcome."""
    return _until(
        chain,
        lambda: [r for r in chain.ctx.warehouse.runs() if r["claim_key"] == claim_key],
        lambda runs: bool(runs) and all(r["state"] not in ("running", "started") for r in runs),
        f"the rebuild {claim_key} did not finish",
        timeout,
    )


def _lake_files(ctx) -> list[str]:
    """The lake's data: partitions, quarantine files and manifests (not the transform claims in it)."""
    from retail_pipeline.adapters.bigquery_warehouse import CLAIMS_PREFIX

    return sorted(i.name for i in ctx.lake.list() if not i.name.startswith(CLAIMS_PREFIX))


def _deploy_table_calls() -> dict[str, str]:
    """docs/deploy.md's role table: account name → the calls column of its rows, joined."""
    calls: dict[str, str] = defaultdict(str)
    for row in (REPO / "docs" / "deploy.md").read_text().splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if row.startswith("| ") and len(cells) == 4:
            calls[cells[1].strip("`").replace("PREFIX", "retail")] += " " + cells[3]
    return calls


@pytest.mark.chain
def test_retract_and_a_deleted_landing_object_on_the_strict_emulator_chain(
    emulators, emulator_env, tmp_path, small_workbook, small_home, monkeypatch
):
    from retail_pipeline.chain import Chain, emulator_settings
    from retail_pipeline.cli import cli
    from retail_pipeline.config import Settings
    from retail_pipeline.context import Context
    from retail_pipeline.lake import batch_id_for
    from retail_pipeline.status import collect
    from retail_pipeline.sweep import sweep

    started = datetime.now(UTC)
    home = tmp_path / "home"
    files = {"small.xlsx": small_workbook, "mistake.xlsx": sample(tmp_path / "mistake.xlsx", rows=400, seed=21)}
    chain = Chain(emulator_settings(home, emulators, suffix="-retract"), emulators).start()
    try:
        assert chain.runtime is not None and chain.strict is not None and chain.strict.policy is not None
        ctx, principals = chain.ctx, chain.strict.policy.resources.principals
        generation, batch = {}, {}
        for name, path in files.items():
            generation[name] = ctx.landing.put(name, path).generation
            batch[name] = batch_id_for(ctx.landing.uri(name), generation[name])
        loaded = _settle(chain, lambda states: states == ["transformed"] * 2, "batches not transformed")
        rows = {b["source"].rsplit("/", 1)[-1]: b["rows"]["loaded"] for b in loaded["batches"]}
        assert all(n > 0 for n in rows.values()), rows
        lake_before = _lake_files(ctx)

        # 1. `retract BATCH_ID` from the command line, as the deployer
        monkeypatch.setenv("RETAIL_PIPELINE_HOME", str(home))  # the CLI sets these; restore them after

        def retract(*args: str) -> dict:
            result = CliRunner().invoke(cli, ["--home", str(home), "retract", *args, "--json"], catch_exceptions=False)
            assert result.exit_code == 0, result.output
            return json.loads(result.output)

        outcome = retract(batch["mistake.xlsx"], "--why", "wrong shop")
        assert outcome["batch_ids"] == [batch["mistake.xlsx"]]
        assert outcome["source_uris"] == [ctx.landing.uri("mistake.xlsx")]
        assert outcome["rows_removed"] == rows["mistake.xlsx"]
        assert outcome["transform"]["status"] == "started"  # the dbt job runs the rebuild (Cloud Run)
        [cli_run] = _finished(chain, outcome["claim_key"])
        assert (cli_run["state"], cli_run["tests_failed"]) == ("success", 0) and cli_run["tests_passed"] > 0, cli_run
        report = collect(ctx)
        states = {b["source"].rsplit("/", 1)[-1]: b["state"] for b in report["batches"]}
        assert states == {"small.xlsx": "transformed", "mistake.xlsx": "retracted"}

        # the warehouse equals one that only ever got small.xlsx: the embedded chain's run of it
        embedded = Settings.from_env(small_home, environ={})
        assert report["warehouse"] == collect(Context(embedded))["warehouse"]
        assert _relations(chain.settings) == _relations(embedded)
        # by its source URI: already retracted, nothing more removed
        again = retract(ctx.landing.uri("mistake.xlsx"))
        assert (again["batch_ids"], again["rows_removed"], again["transform"]) == ([], 0, None)

        # 2. a person deletes small.xlsx (a versioned bucket: its live generation is archived)
        ctx.landing.delete("small.xlsx")
        chain.runtime.run_until_idle(timeout=300)
        archived = [s for t, s in chain.runtime.stats.results if t == "load" and s["subject"] == "objects/small.xlsx"]
        assert len(archived) == 1, chain.runtime.stats.results  # delivered to the load function, answered 2xx
        [delete_run] = _finished(chain, f"retract-{batch['small.xlsx']}")
        assert (delete_run["state"], delete_run["tests_failed"]) == ("success", 0), delete_run
        final = collect(ctx)
        assert {b["state"] for b in final["batches"]} == {"retracted"}
        assert final["warehouse"] == {"fact_rows": 0, "net_amount": "0.00"}
        assert (final["dbt"]["status"], final["dbt"]["tests_failed"]) == ("success", 0)
        assert {name: lines for name, lines in _relations(chain.settings).items() if lines} == {}

        # the audit rows: who, when, why, what
        wh = ctx.warehouse
        audit = {
            r[0]: r[1:]
            for r in wh.query(
                "SELECT batch_id, source_uri, source_generation, rows_removed, partitions, retracted_by, reason, "
                f"retracted_at FROM {wh.table(wh.pipeline, 'retractions')}"
            )
        }
        assert sorted(audit) == sorted(batch.values())
        now = datetime.now(UTC)
        for name in files:
            uri, gen, removed, partitions, _who, _why, at = audit[batch[name]]
            assert (uri, gen, removed) == (ctx.landing.uri(name), generation[name], rows[name])
            assert json.loads(partitions) and started <= at <= now
        assert audit[batch["mistake.xlsx"]][4:6] == (principals["admin"], "wrong shop")
        who, why = audit[batch["small.xlsx"]][4:6]
        assert who == f"{principals['load']} (landing object deleted)"
        assert ctx.landing.uri("small.xlsx") in why and str(generation["small.xlsx"]) in why

        # the lake keeps every file; the sweep re-drives nothing (the ledger rows stay)
        assert _lake_files(ctx) == lake_before and lake_before
        as_sweep = Context(chain.settings.with_changes(identity=principals["sweep"]))
        assert sweep(as_sweep, grace_seconds=0).findings == []

        # the strict layer refused nothing; the deletion's retraction ran as the load account
        calls = [json.loads(line) for line in chain.strict.audit_path.read_text().splitlines()]
        assert calls and [c for c in calls if not c["allowed"]] == []
        load = {
            (c["permission"], c["resource"].rsplit("/", 1)[-1]) for c in calls if c["account"] == principals["load"]
        }
        assert {("storage.objects.get", "small.xlsx"), ("bigquery.tables.updateData", "retractions")} <= load
        # every permission a component used is in docs/deploy.md's role table
        documented = _deploy_table_calls()
        used = {
            (c["account"].split("@")[0], c["permission"])
            for c in calls
            if c["permission"] and c["binding"] and c["account"] != principals["admin"]
        }
        missing = sorted(
            f"{account}: {permission}"
            for account, permission in used
            if permission not in documented[account] and "." + permission.rpartition(".")[2] not in documented[account]
        )
        assert missing == []
    finally:
        chain.stop()
