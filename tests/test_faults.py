"""Under injected faults (duplicates, shuffling, delays, crashes) the chain converges to the same warehouse."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import duckdb
import openpyxl
import pytest

from helpers import run_cli
from retail_pipeline.config import Settings
from retail_pipeline.faults import FaultPlan
from retail_pipeline.pipeline import run_local
from retail_pipeline.sample import write_sample

ALL_CRASHES = (
    "ingest.start",
    "ingest.partition",
    "load.start",
    "load.after_job",
    "load.publish",
    "transform.start",
    "transform.after_claim",
)
RUN_SPECIFIC = {
    "batch_id",
    "batch_ids",
    "source_uri",
    "source_generation",
    "ingested_at",
    "loaded_at",
    "dbt_loaded_at",
    "invocation_id",
    "built_at",
}


def snapshot(home: Path) -> dict:
    """Fact figures and every mart's rows (without columns that name a particular run or file)."""
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        out = {
            "fact": con.execute(
                "SELECT count(*), sum(amount), count(DISTINCT line_id), "
                "bit_xor(hash(line_id)) FROM analytics.fct_sales_lines"
            ).fetchone()
        }
        marts = [
            t
            for (t,) in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = "
                "'analytics' AND table_name LIKE 'mart_%' ORDER BY 1"
            ).fetchall()
        ]
        for mart in marts:
            cols = [
                c
                for (c,) in con.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = "
                    "'analytics' AND table_name = ? ORDER BY ordinal_position",
                    [mart],
                ).fetchall()
                if c not in RUN_SPECIFIC
            ]
            out[mart] = sorted(map(repr, con.execute(f"SELECT {', '.join(cols)} FROM analytics.{mart}").fetchall()))
        out["dbt_runs"] = con.execute("SELECT count(DISTINCT started_at) FROM pipeline.transform_runs").fetchone()[0]
    finally:
        con.close()
    return out


def faulted_run(home: Path, files: list[tuple[Path, str]], seed: int) -> dict:
    plan = FaultPlan(max_copies=3, shuffle=True, delay_probability=0.2, seed=seed, crash=ALL_CRASHES)
    return run_local(Settings.from_env(home), files, faults=plan, timeout=900)


@pytest.mark.slow  # two whole runs, one under every fault (every event up to three times) (make test-fast leaves it out)
def test_small_workbook_under_every_fault_equals_a_clean_run(tmp_path, small_workbook, monkeypatch):
    clean, faulty = tmp_path / "clean", tmp_path / "faulty"
    run_cli(clean, "run", str(small_workbook))
    monkeypatch.setenv("RETAIL_PIPELINE_FAULT_STATE", str(faulty / "faults"))
    summary = faulted_run(faulty, [(small_workbook, small_workbook.name)], seed=11)
    assert summary["ok"], summary
    # every crash point fired once and was retried by the runtime
    assert len(list((faulty / "faults").iterdir())) >= len(ALL_CRASHES)
    assert sum(summary["deliveries"].values()) > 2 * (summary["batches"][0]["partitions"] + 2)
    expected, got = snapshot(clean), snapshot(faulty)
    assert got == expected
    assert got["dbt_runs"] == 1


@pytest.mark.slow
def test_reference_workbook_under_faults_equals_the_clean_run(
    tmp_path, reference_home, reference_workbook, monkeypatch
):
    home = tmp_path / "faulty"
    monkeypatch.setenv("RETAIL_PIPELINE_FAULT_STATE", str(home / "faults"))
    summary = faulted_run(home, [(reference_workbook, reference_workbook.name)], seed=3)
    assert summary["ok"], summary["dead_letters"]
    assert summary["warehouse"] == {"fact_rows": 536_637, "net_amount": "22075976.06"}
    assert snapshot(home) == snapshot(reference_home)


@pytest.mark.slow  # twenty chains' worth of dbt builds: minutes
def test_twenty_drops_at_once_each_batch_once_and_few_dbt_runs(tmp_path):
    books = []
    for seed in range(20):
        path = tmp_path / f"book_{seed:02d}.xlsx"
        write_sample(path, rows=1000, seed=100 + seed)
        books.append((path, path.name))
    home = tmp_path / "h"
    summary = run_local(Settings.from_env(home), books, timeout=900)
    assert summary["ok"]
    assert len(summary["batches"]) == 20 and {b["state"] for b in summary["batches"]} == {"transformed"}

    # independent: every distinct line over the 20 files (lines repeated across files count once)
    distinct = set()
    for path, _ in books:
        for row in openpyxl.load_workbook(path, read_only=True).worksheets[0].iter_rows(min_row=2, values_only=True):
            inv, code, desc, qty, when, price, cust, country = row
            distinct.add(
                (
                    str(inv),
                    str(code),
                    (desc or "").strip() or None,
                    int(qty),
                    when,
                    Decimal(str(round(price, 4))),
                    None if cust is None else str(int(cust)),
                    country,
                )
            )
    assert summary["warehouse"]["fact_rows"] == len(distinct)
    assert Decimal(summary["warehouse"]["net_amount"]) == sum(k[3] * k[5] for k in distinct)
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    per_batch = con.execute("SELECT batch_id, count(*) FROM pipeline.transform_runs GROUP BY 1").fetchall()
    dbt_runs = con.execute("SELECT count(DISTINCT started_at) FROM pipeline.transform_runs").fetchone()[0]
    con.close()
    assert len(per_batch) == 20 and all(n == 1 for _, n in per_batch)  # each batch claimed exactly once
    assert 1 <= dbt_runs <= 20  # not one per event (there were 20 × 14 messages)
    assert json.loads(run_cli(home, "status", "--json").stdout)["dbt"]["status"] == "success"
