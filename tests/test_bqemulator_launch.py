"""The BigQuery emulator's launcher keeps each SQL parse (retail_pipeline/bqemulator_launch.py): one
parse per text and dialect, every caller gets a tree of its own, and the chain's emulator runs with it."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlglot

from retail_pipeline.bqemulator_launch import remembering

SQL = "SELECT a, count(*) AS n FROM `p.d.t` WHERE b > 1 GROUP BY a"


def counted(parse):
    calls: list[str] = []

    def parse_counted(sql, **kw):
        calls.append(sql)
        return parse(sql, **kw)

    return parse_counted, calls


def test_a_text_is_parsed_once_and_each_caller_gets_its_own_tree():
    parse, calls = counted(sqlglot.parse_one)
    remembered = remembering(parse, lambda tree: tree.copy())

    first = remembered(SQL, read="bigquery")
    first.set("where", None)  # a caller changes its tree (the emulator's rewriters do)
    second = remembered(SQL, read="bigquery")
    assert calls == [SQL]
    assert second is not first
    assert second.sql("bigquery") == sqlglot.parse_one(SQL, read="bigquery").sql("bigquery")
    assert "WHERE" in second.sql("bigquery") and "WHERE" not in first.sql("bigquery")

    # another dialect is another parse; so is a call with options (passed through as they are)
    assert remembered(SQL.replace("`", '"'), read="duckdb").sql("duckdb") == sqlglot.parse_one(
        SQL.replace("`", '"'), read="duckdb"
    ).sql("duckdb")
    remembered(SQL, read="bigquery", error_level=sqlglot.ErrorLevel.RAISE)
    assert len(calls) == 3


def test_a_bad_text_raises_every_time():
    remembered = remembering(sqlglot.parse_one, lambda tree: tree.copy())
    for _ in range(2):
        with pytest.raises(sqlglot.errors.ParseError):
            remembered("SELECT FROM WHERE (", read="bigquery")


def test_a_script_is_kept_as_its_statements():
    parse, calls = counted(sqlglot.parse)
    remembered = remembering(parse, lambda trees: [t.copy() for t in trees])
    script = "BEGIN TRANSACTION; DELETE FROM d.t WHERE x = 1; COMMIT TRANSACTION;"
    one, two = remembered(script, read="bigquery"), remembered(script, read="bigquery")
    assert len(calls) == 1
    assert [t.sql("bigquery") for t in one] == [t.sql("bigquery") for t in two]
    assert all(a is not b for a, b in zip(one, two))


@pytest.mark.emulator
def test_the_chains_bigquery_emulator_runs_through_the_launcher(emulators):
    proc = emulators.procs["bigquery"]
    argv = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
    assert b"retail_pipeline.bqemulator_launch" in argv and b"start" in argv
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    client = bigquery.Client(
        project=emulators.project,
        client_options={"api_endpoint": emulators.bq_url},
        credentials=AnonymousCredentials(),
    )
    for _ in range(2):  # the same text twice: the kept parse gives the same answer
        assert [tuple(r.values()) for r in client.query("SELECT 1 + 1 AS two, 'a' AS a").result()] == [(2, "a")]
