"""The bad-input corpus (tests/corpus.py): each file gets its documented outcome, nothing loaded
before changes, and a good file dropped after the whole corpus loads completely."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from urllib.parse import unquote

import duckdb
import pytest
from click.testing import CliRunner

from corpus import CORPUS_LIMITS, cases, materialize
from retail_pipeline.cli import cli
from retail_pipeline.config import Settings
from retail_pipeline.pipeline import run_local
from retail_pipeline.sample import write_sample

REPO = Path(__file__).resolve().parents[1]


def test_corpus_has_at_least_25_cases_and_all_are_documented():
    doc = (REPO / "docs" / "reliability.md").read_text()
    names = [c.name for c in cases()]
    assert len(names) >= 25 and len(set(names)) == len(names)
    for case in cases():
        shown = case.name if len(case.name) < 60 else case.name[:20]
        assert shown in doc, f"docs/reliability.md lacks the case {shown!r}"


def fact_lines(home: Path) -> set:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return set(con.execute("SELECT line_id, amount FROM analytics.fct_sales_lines").fetchall())
    finally:
        con.close()


def staged_lines(home: Path, batch_id: str) -> set:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return set(
            con.execute(
                "SELECT line_id, amount FROM analytics.stg_sales_lines WHERE batch_id = ?", [batch_id]
            ).fetchall()
        )
    finally:
        con.close()


@pytest.mark.slow
def test_every_bad_input_gets_its_documented_outcome(tmp_path, monkeypatch):
    for key, value in CORPUS_LIMITS.items():
        monkeypatch.setenv(key, value)
    home = tmp_path / "home"
    monkeypatch.setenv("RETAIL_PIPELINE_HOME", str(home))
    settings = Settings.from_env(home)
    first, last = tmp_path / "first.xlsx", tmp_path / "last.xlsx"
    write_sample(first, rows=1500, seed=21)
    write_sample(last, rows=1500, seed=22)
    assert run_local(settings, [(first, "good_first.xlsx")])["ok"]
    before = fact_lines(home)
    assert len(before) > 1000

    drops = []
    runner = CliRunner()
    for case, path in materialize(tmp_path / "corpus"):
        if case.outcome == "refused":
            result = runner.invoke(cli, ["--home", str(home), "drop", str(path), "--name", case.name])
            assert result.exit_code == 1 and case.reason in result.output, (case.name, result.output)
            continue
        drops.append((path, case.name))
    drops.append((last, "good_last.xlsx"))
    summary = run_local(settings, drops, timeout=900)

    assert summary["dead_letters"] == []  # no crash loop: every event was answered
    by_name = {unquote(b["source"].rsplit("/landing/", 1)[1]): b for b in summary["batches"]}
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    for case in cases():
        if case.outcome == "refused":
            continue
        batch = by_name[case.name]
        if case.outcome == "rejected":
            assert (batch["state"], batch["error_code"]) == ("rejected", case.reason), (case.name, batch)
            assert batch["error"]
        else:
            assert batch["state"] == "transformed", (case.name, batch)
            assert batch["rows"]["loaded"] == case.loaded, (case.name, batch["rows"])
            reasons = Counter(
                dict(
                    con.execute(
                        "SELECT reason, count(*) FROM raw.quarantine WHERE batch_id = ? GROUP BY 1", [batch["batch_id"]]
                    ).fetchall()
                )
            )
            assert reasons == Counter(case.quarantined), (case.name, reasons)
    con.close()
    assert by_name["good_last.xlsx"]["state"] == "transformed"
    assert by_name["good_last.xlsx"]["rows"]["quarantined"] == 0
    last_lines = staged_lines(home, by_name["good_last.xlsx"]["batch_id"])
    assert len(last_lines) == by_name["good_last.xlsx"]["rows"]["loaded"]
    after = fact_lines(home)
    assert before <= after  # nothing already loaded changed
    assert last_lines <= after  # the good file after the corpus loaded completely
