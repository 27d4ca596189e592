"""Values written into the embedded warehouse's statements as literals (adapters/duckdb_sql.py)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from retail_pipeline.adapters.duckdb_sql import inline, sql_literal

TRICKY = [
    "plain",
    "it's",
    "''",
    "a ? in the text",
    'double " quote',
    "back\\slash \\' and a quote",
    "naïve café ✓ 日本",
    "line\nbreak",
    "",
    None,
    0,
    -7,
    2**62,
    True,
    False,
    1.5,
    -0.1,
    1e300,
]


def test_every_value_reads_back_as_it_went_in():
    con = duckdb.connect()
    for value in TRICKY:
        (back,) = con.execute(inline("SELECT ?", [value])).fetchone()
        assert back == value and type(back) is type(value), (value, back)
    (nan, inf) = con.execute(inline("SELECT ?, ?", [math.nan, -math.inf])).fetchone()
    assert math.isnan(nan) and inf == -math.inf


def test_placeholders_in_quotes_stay_and_the_counts_must_match():
    con = duckdb.connect()
    sql = "SELECT '?' AS \"a?\", ? AS b, 'it''s ?' AS c, ? AS d"
    row = con.execute(inline(sql, ["x'?", 3])).fetchone()
    assert row == ("?", "x'?", "it's ?", 3)
    with pytest.raises(ValueError, match="more placeholders"):
        inline("SELECT ?, ?", [1])
    with pytest.raises(ValueError, match="2 values for 1 placeholders"):
        inline("SELECT ?", [1, 2])
    with pytest.raises(ValueError, match="NUL"):
        sql_literal("a\x00b")


SCRIPT = r"""
import json, sys
from pathlib import Path
from retail_pipeline import context
from retail_pipeline.config import Limits, Settings
from retail_pipeline.ingest import ingest_object
from retail_pipeline.ports import LoadRequest, TransformResult
from retail_pipeline.stages import lake_object_kind

home, workbook = Path(sys.argv[1]), Path(sys.argv[2])
ctx = context.Context(Settings.from_env(home, environ={}))
ctx.provision()
name = "it's a book?.xlsx"
batch = ingest_object(workbook, name, ctx.landing.uri(name), 100, ctx.lake, Limits())
names = [f"manifests/{batch.batch_id}.json"] + [
    f"sales/month={p['partition']}/{batch.batch_id}.parquet" for p in batch.partitions
]
wh = ctx.warehouse
loads = [wh.load_object(LoadRequest.for_object(lake_object_kind(n), ctx.lake.stat(n), ctx.lake.uri(n))) for n in names]
progress = wh.batch_progress(batch.batch_id)
claimable = [b.batch_id for b in wh.claimable_batches()]
claimed = wh.claim_transform(batch.batch_id, "initial")
wh.finish_transform(batch.batch_id, "initial", TransformResult("failed", 1, 2, 3, 4.25, "test 'x' failed?"))
run = [r for r in wh.runs() if r["batch_id"] == batch.batch_id][0]
print(json.dumps({
    "loads": [l.status for l in loads],
    "rows": sum(l.rows for l in loads[1:]),
    "expected": sum(p["rows"] for p in batch.partitions),
    "complete": progress.complete,
    "claimable": claimable == [batch.batch_id],
    "claimed": claimed,
    "run": [run["state"], run["seconds"], run["error"]],
    "pandas": "pandas" in sys.modules,
}))
"""


def test_loads_and_claims_in_a_fresh_process_do_not_import_pandas(tmp_path: Path, small_workbook: Path):
    """Binding a parameter makes DuckDB's client import pandas (0.4 s per process): the loads,
    progress, claims and runs write their values as literals, including a source name with a quote."""
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "home"), str(small_workbook)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["loads"] == ["loaded"] * len(out["loads"]) and len(out["loads"]) > 2
    assert out["rows"] == out["expected"] > 0
    assert out["complete"] and out["claimable"] and out["claimed"]
    assert out["run"] == ["failed", 4.25, "test 'x' failed?"]
    assert out["pandas"] is False
