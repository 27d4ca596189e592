"""`retail-pipeline bench`: its measurement method and its report, on a tiny workbook.

Only the structure and the method are tested here (one round, small file); the figures that
matter come from running the command on the reference workbook (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import sys

import pytest

from helpers import run_cli
from retail_bench.harness import DEFAULT_BASELINES, BenchPlan, run_bench
from retail_bench.measure import measure
from retail_bench.runs import BenchError, stage_seconds
from retail_pipeline.sample import write_sample

sys.path.insert(0, str(DEFAULT_BASELINES))
from concat_csv import concat
from pandas_openpyxl import snake


def test_measure_reports_the_childs_own_peak_memory(tmp_path):
    grow = "b = bytearray(120 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096])"
    big = measure([sys.executable, "-c", grow], timeout=60, log=tmp_path / "big.log")
    small = measure([sys.executable, "-c", "pass"], timeout=60, log=tmp_path / "small.log")
    assert big.returncode == 0 and small.returncode == 0
    assert big.peak_mb >= 120 > small.peak_mb  # per child, not the maximum over all children
    assert big.wall > 0 and big.cpu > 0


def test_measured_processes_keep_compiled_modules_and_the_rest_of_the_environment(tmp_path):
    """A machine's PYTHONDONTWRITEBYTECODE=1 would make each measured process compile its imports again."""
    probe = (
        "import os, sys; "
        "sys.exit(3 if sys.dont_write_bytecode else 4 if os.environ.get('BENCH_PROBE') != 'kept' else 0)"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1", "BENCH_PROBE": "kept"}
    m = measure([sys.executable, "-c", probe], timeout=60, log=tmp_path / "probe.log", env=env)
    assert m.returncode == 0, (tmp_path / "probe.log").read_text()
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"  # the caller's mapping is left as it was


def test_measure_kills_a_process_at_its_timeout(tmp_path):
    m = measure([sys.executable, "-c", "import time; time.sleep(30)"], timeout=1, log=tmp_path / "slow.log")
    assert m.returncode != 0 and m.wall < 20


def test_bench_prints_a_table_and_writes_json(tmp_path):
    book = tmp_path / "tiny.xlsx"
    write_sample(book, rows=1500, seed=3)
    out = tmp_path / "report.json"
    proc = run_cli(
        tmp_path / "home",
        "bench",
        str(book),
        "--runs",
        "2",
        "--pandas-runs",
        "1",
        "--e2e-runs",
        "0",
        "--out",
        str(out),
        timeout=300,
    )
    report = json.loads(out.read_text())
    assert set(report["readers"]) == {"ingest", "fastexcel", "fastexcel-eager", "pandas-openpyxl", "cli-startup"}
    for name, r in report["readers"].items():
        runs = 1 if name == "pandas-openpyxl" else 2
        assert r["wall"]["n"] == runs and len(r["raw"]["wall"]) == runs
        assert 0 < r["wall"]["min"] <= r["wall"]["median"] <= r["wall"]["max"]
        assert 0 < r["peak_mb"]["min"] <= r["peak_mb"]["median"] <= r["peak_mb"]["max"]
        assert r["cpu"]["median"] > 0
    fastexcel = report["readers"]["fastexcel"]
    assert fastexcel["wall_ratio"] == 1.0 and fastexcel["peak_ratio"] == 1.0
    ingest = report["readers"]["ingest"]
    assert ingest["wall_ratio"] == pytest.approx(ingest["wall"]["median"] / fastexcel["wall"]["median"], rel=1e-2)
    assert len(ingest["wall_ratio_by_round"]) == 2
    assert ingest["wall_ratio_by_round"][0] == pytest.approx(
        ingest["raw"]["wall"][0] / fastexcel["raw"]["wall"][0], rel=1e-2
    )
    assert "ingest/fastexcel wall in the same round" in proc.stdout
    assert ingest["cpu_ratio"] == pytest.approx(ingest["cpu"]["median"] / fastexcel["cpu"]["median"], rel=1e-2)
    assert ingest["cpu_ratio_by_round"][1] == pytest.approx(
        ingest["raw"]["cpu"][1] / fastexcel["raw"]["cpu"][1], rel=1e-2
    )
    assert "ingest/fastexcel CPU in the same round" in proc.stdout and "noise: fastexcel wall max/min" in proc.stdout
    checks = report["checks"]
    assert {c["target"] for c in checks.values()} == {1.3, 1.25}
    assert checks["ingest CPU / fastexcel CPU (medians)"]["value"] == ingest["cpu_ratio"]
    assert all(c["ok"] == (c["value"] <= c["target"]) for c in checks.values())
    assert report["machine"]["nproc"] >= 1 and report["machine"]["ram_gb"] > 0
    assert report["end_to_end"] == [] and "scale" not in report
    assert "ingest wall / fastexcel wall (medians)" in proc.stdout
    assert "pandas-openpyxl" in proc.stdout and f"wrote {out}" in proc.stdout


def test_bench_needs_its_baseline_scripts(tmp_path):
    book = tmp_path / "tiny.xlsx"
    write_sample(book, rows=100, seed=1)
    proc = run_cli(tmp_path / "home", "bench", str(book), "--baselines", str(tmp_path), check=False)
    assert proc.returncode != 0 and "baseline script missing" in proc.stderr


def test_bench_alternates_only_the_variants_asked_for(tmp_path):
    book = tmp_path / "tiny.xlsx"
    write_sample(book, rows=300, seed=2)
    out = tmp_path / "report.json"
    proc = run_cli(
        tmp_path / "home",
        "bench",
        str(book),
        "--runs",
        "2",
        "--variants",
        "ingest,fastexcel",
        "--e2e-runs",
        "0",
        "--out",
        str(out),
        timeout=300,
    )
    report = json.loads(out.read_text())
    assert set(report["readers"]) == {"ingest", "fastexcel"}
    assert [line.split()[2] for line in proc.stderr.splitlines() if "round" in line and " s wall " in line] == [
        "ingest",
        "fastexcel",
        "ingest",
        "fastexcel",
    ]


def test_the_harness_raises_its_own_error_not_a_click_one(tmp_path):
    with pytest.raises(BenchError, match="variants must include ingest and fastexcel"):
        run_bench(BenchPlan(workbook=DEFAULT_BASELINES / "plain_fastexcel.py", variants=("ingest",)))
    with pytest.raises(BenchError, match="baseline script missing"):
        run_bench(BenchPlan(workbook=DEFAULT_BASELINES / "plain_fastexcel.py", baselines=tmp_path))


def test_stage_seconds_are_read_from_the_run_summary():
    output = "batch x: transformed\nseconds: ingest 3.21, load 2.50, transform 7.04, total 13.10\n"
    assert stage_seconds(output) == {"ingest": 3.21, "load": 2.5, "transform": 7.04, "total": 13.1}


def test_concat_csv_writes_the_header_once(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("x,y\n1,2\n3,4")  # no newline at the end
    b.write_text("x,y\n5,6\n")
    out = tmp_path / "all.csv"
    assert concat(out, [a, b]) == 2
    assert out.read_text().splitlines() == ["x,y", "1,2", "3,4", "5,6"]
    (tmp_path / "c.csv").write_text("x,z\n7,8\n")
    with pytest.raises(ValueError, match="header"):
        concat(tmp_path / "bad.csv", [a, tmp_path / "c.csv"])


@pytest.mark.parametrize(
    "name, expected",
    [("InvoiceNo", "invoice_no"), ("Customer ID", "customer_id"), ("UnitPrice", "unit_price"), ("Country", "country")],
)
def test_pandas_baseline_renames_like_the_original_project(name, expected):
    assert snake(name) == expected
