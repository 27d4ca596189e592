"""How a batch reaches dbt: the transform slice table, dbt's saved parse, and the unit tests.

The batch's months go through a small table (not --vars), so dbt's saved parse stays valid from
batch to batch and from process to process; a run that fails gives its months back; production
builds leave the unit tests out, and the unit tests still pass when run on their own.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import pytest
import yaml

from loaded_batch import MONTHS, ingest_and_load

DBT = Path(__file__).resolve().parents[1] / "dbt"
FULL_PARSE = "Unable to do partial parsing"


def _sql(ctx, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(ctx.settings.warehouse[len("duckdb://") :]) as con:
        return con.execute(sql, params or []).fetchall()


def _dbt_log(ctx) -> str:
    return (ctx.settings.home / "dbt" / "logs" / "dbt.log").read_text()


def _run_results(ctx) -> list[str]:
    """The nodes the last dbt command ran (its on-run-start/on-run-end hooks left out)."""
    data = json.loads((ctx.settings.home / "dbt" / "target" / "run_results.json").read_text())
    return [r["unique_id"] for r in data["results"] if not r["unique_id"].startswith("operation.")]


@pytest.fixture
def transformer(ctx):
    from retail_pipeline.dbt_worker import worker

    worker().close()  # a new dbt process for this test: its parse starts from what the home holds
    yield ctx.transformer
    worker().close()


def test_production_build_runs_models_and_data_tests_and_the_unit_tests_pass_alone(ctx, transformer, tmp_path):
    batch_id = ingest_and_load(ctx, tmp_path)
    result = transformer.run([batch_id], MONTHS)
    assert result.status == "success" and result.tests_failed == 0, result
    built = _run_results(ctx)
    assert built and not [u for u in built if u.startswith("unit_test.")]
    assert len([u for u in built if u.startswith("test.")]) == result.tests_passed
    assert (
        len([u for u in built if u.startswith("model.")])
        == result.models_built
        == len(list((DBT / "models").rglob("*.sql")))
    )

    # the unit tests, as `make test` runs them: every one declared in the project's YAML passes
    declared = {
        t["name"]
        for path in (DBT / "models").rglob("*.yml")
        for t in (yaml.safe_load(path.read_text()) or {}).get("unit_tests", [])
    }
    assert len(declared) >= 9
    unit = transformer.build(["--select", "test_type:unit"], command="test")
    assert unit.status == "success" and unit.tests_failed == 0, unit
    ran = _run_results(ctx)
    assert {u.split(".")[-1] for u in ran} == declared and all(u.startswith("unit_test.") for u in ran)
    assert unit.tests_passed == len(declared)


@pytest.mark.slow  # several dbt processes, the first parsing from scratch (make test-fast leaves it out)
def test_batches_keep_the_saved_parse_across_processes_and_homes(ctx, transformer, tmp_path, monkeypatch):
    from retail_pipeline import context
    from retail_pipeline.config import Settings
    from retail_pipeline.dbt_worker import worker

    first = ingest_and_load(ctx, tmp_path)
    assert transformer.run([first], MONTHS).status == "success"
    assert (ctx.settings.home / "dbt" / "target" / "partial_parse.msgpack").exists()  # the home's own parse
    assert (DBT / "target" / "partial_parse.msgpack").exists()  # shared with the next new home
    assert _sql(ctx, "select count(*) from analytics.transform_slice") == [(0,)]  # consumed

    worker().close()  # the next batch in a new process, as the next `retail-pipeline run` would be
    mark = len(_dbt_log(ctx))
    (tmp_path / "second").mkdir()
    second = ingest_and_load(ctx, tmp_path / "second", name="other.xlsx")
    result = transformer.run([second], MONTHS)
    assert result.status == "success" and result.tests_failed == 0, result
    later = _dbt_log(ctx)[mark:]
    assert later.count("Running with dbt=") == 3  # parse, run-operation, build
    assert FULL_PARSE not in later, re.findall(f"{FULL_PARSE}.*", later)
    # the second batch's run rewrote both months, and says so on each row it wrote
    assert _sql(
        ctx,
        "select distinct strftime(invoice_month, '%Y-%m'), transform_batch_id "
        "from analytics.fct_sales_lines order by 1",
    ) == [(m, second) for m in MONTHS]
    assert _sql(ctx, "select count(*) from analytics.transform_slice") == [(0,)]

    # a new home starts from the project's saved parse, as the job image starts from its own
    new_home = tmp_path / "new-home"
    monkeypatch.setenv("RETAIL_PIPELINE_HOME", str(new_home))
    other = context.Context(Settings.from_env(new_home))
    context.use(other)
    (tmp_path / "third").mkdir()
    third = ingest_and_load(other, tmp_path / "third")
    assert other.transformer.run([third], MONTHS).status == "success"
    log = _dbt_log(other)
    assert "Running with dbt=" in log and FULL_PARSE not in log, re.findall(f"{FULL_PARSE}.*", log)


def test_a_failed_run_gives_its_months_back_and_the_next_run_rewrites_them(ctx, transformer, tmp_path):
    batch_id = ingest_and_load(ctx, tmp_path)
    # break the staging view's input: the build fails before the fact
    _sql(ctx, "alter table raw.sales_lines rename column quantity to qty")
    failed = transformer.run([batch_id], MONTHS)
    assert failed.status == "failed" and failed.error, failed
    assert _sql(
        ctx, "select strftime(invoice_month, '%Y-%m'), batch_id, claimed_by from analytics.transform_slice order by 1"
    ) == [(m, batch_id, None) for m in MONTHS]

    _sql(ctx, "alter table raw.sales_lines rename column qty to quantity")
    fixed = transformer.build(["--exclude", "resource_type:unit_test"])  # a build with nothing new queued
    assert fixed.status == "success" and fixed.tests_failed == 0, fixed
    assert _sql(ctx, "select count(*) from analytics.transform_slice") == [(0,)]
    assert _sql(
        ctx,
        "select distinct strftime(invoice_month, '%Y-%m'), transform_batch_id "
        "from analytics.fct_sales_lines order by 1",
    ) == [(m, batch_id) for m in MONTHS]


def test_queue_refuses_a_month_that_is_not_yyyy_mm(ctx, transformer, tmp_path):
    batch_id = ingest_and_load(ctx, tmp_path)
    result = transformer.run([batch_id], ["2011-13"])
    assert result.status == "failed" and "run-operation" in (result.error or ""), result
    assert "YYYY-MM" in _dbt_log(ctx)


def test_a_build_waits_for_another_process_holding_the_warehouse(ctx, transformer, tmp_path):
    """`retail-pipeline status` (a cron check, say) may hold the DuckDB file just as dbt opens it:
    the build waits for it (the profile's connect retries) instead of failing the batch."""
    import subprocess
    import sys
    import time

    batch_id = ingest_and_load(ctx, tmp_path)
    # the worker parses first, so the build below opens the file at once (not after a parse that
    # could outlast the other process's hold)
    assert transformer.build(["--select", "stg_batches"], command="run").status == "success"
    ctx.warehouse.release()
    path = ctx.settings.warehouse[len("duckdb://") :]
    holder = subprocess.Popen(  # another process with the file open read-only for 3 s
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=True); print('held', flush=True);"
            " time.sleep(3); c.close()",
            path,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        result = transformer.run([batch_id], MONTHS)
        waited = time.monotonic() - started
    finally:
        holder.wait(timeout=30)
    assert result.status == "success" and result.tests_failed == 0, result
    assert waited > 1.0  # it did meet the lock (not a timing figure: the holder keeps it 3 s)
    assert _sql(ctx, "SELECT count(*) FROM analytics.fct_sales_lines")[0][0] > 0
