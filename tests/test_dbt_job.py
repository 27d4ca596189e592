"""The dbt Cloud Run job: its image recipe, its pins, and its entrypoint run locally against DuckDB.

No Docker engine here, so the image is not built; the entrypoint the image runs is run as a
process, with the same arguments the transform function puts in the execution's overrides.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from loaded_batch import MONTHS, ROWS, ingest_and_load

REPO = Path(__file__).resolve().parents[1]
DBT = REPO / "dbt"


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"{path.name}: {line!r} is not pinned exactly"
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_image_pins_match_requirements_lock():
    image, lock = _pins(DBT / "requirements.txt"), _pins(REPO / "requirements.lock")
    assert {name: lock.get(name) for name in image} == image
    assert image["dbt-core"] == lock["dbt-core"] and image["dbt-bigquery"] == lock["dbt-bigquery"]
    assert "dbt-duckdb" not in image  # the job only talks to BigQuery


def test_dockerfile_runs_the_entrypoint_on_the_prod_target():
    text = (DBT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    assert "pip install --no-cache-dir -r /app/requirements.txt" in text
    assert re.search(r'^ENTRYPOINT \["python", "/app/dbt/entrypoint.py"\]$', text, re.M)
    assert "DBT_TARGET=prod" in text and "DBT_SEND_ANONYMOUS_USAGE_STATS=false" in text
    assert re.search(r"^USER dbt$", text, re.M)  # not root
    # built from the repository root: the context holds the dbt project and the pipeline package only
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ignored[ignored.index("*") + 1 :][:2] == ["!dbt/", "!src/retail_pipeline/"]
    assert "dbt/target/" in ignored and "dbt/logs/" in ignored
    # the image starts parsed: dbt parse runs as the job's user, after the project is copied, into the
    # target path the job uses (kept in the image, not under /tmp)
    parse = re.search(r"^RUN dbt parse --project-dir /app/dbt --profiles-dir /app/dbt --target prod$", text, re.M)
    assert parse and parse.start() > text.index("USER dbt") > text.index("COPY --chown=dbt dbt /app/dbt")
    # the report step: the package on the path, the dbt project where config.Settings looks for it
    assert "COPY src/retail_pipeline /app/src/retail_pipeline" in text
    assert "PYTHONPATH=/app/src" in text and "RETAIL_PIPELINE_DBT_PROJECT=/app/dbt" in text
    assert re.search(r"DBT_TARGET_PATH=/app/dbt/target\b", text)
    # the profile renders the job's environment at build time too (build args, as Terraform's dbt_env)
    terraform = (REPO / "terraform" / "main.tf").read_text()
    job_env = re.search(r"dbt_env = \{(.*?)\}", terraform, re.S).group(1)
    for name in re.findall(r"(RETAIL_PIPELINE_\w+)\s*=", job_env):
        assert re.search(rf"^ARG {name}=", text, re.M) and f"{name}=${{{name}}}" in text, name


def _entrypoint(args: list[str], duckdb_path: Path, work: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "RETAIL_PIPELINE_DUCKDB_PATH": str(duckdb_path),
        "DBT_TARGET_PATH": str(work / "target"),
        "DBT_LOG_PATH": str(work / "logs"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    return subprocess.run(
        [sys.executable, str(DBT / "entrypoint.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=work,
    )


@pytest.mark.slow  # the job script in its own process: dbt imported and the project parsed from scratch (make test-fast leaves it out)
def test_entrypoint_builds_the_batch_on_duckdb(ctx, tmp_path: Path):
    batch_id = ingest_and_load(ctx, tmp_path)
    duckdb_path = Path(ctx.settings.warehouse[len("duckdb://") :])
    vars_json = json.dumps({"batch_id": batch_id, "partitions": MONTHS})
    proc = _entrypoint(["--target", "local", "--vars", vars_json], duckdb_path, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["status"] == "success" and summary["batch_id"] == batch_id and summary["partitions"] == MONTHS
    assert summary["tests_failed"] == 0 and summary["tests_passed"] == 23  # 17 row_rules tests, 6 singular
    assert summary["models_built"] == len(list((DBT / "models").rglob("*.sql")))
    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        fact = con.execute(
            "select count(*), count(distinct transform_batch_id), max(transform_batch_id) "
            "from analytics.fct_sales_lines"
        ).fetchone()
        monthly = con.execute(
            "select strftime(invoice_month, '%Y-%m'), net_revenue from analytics.mart_revenue_monthly order by 1"
        ).fetchall()
    assert fact == (len(ROWS), 1, batch_id)
    # Dec: 6 x 2.55 + 6 x 3.39 + 18.00 postage; Jan: 12 x 1.85 - 2 x 1.85 + 24 x 1.65
    assert [(m, float(v)) for m, v in monthly] == [("2010-12", 53.64), ("2011-01", 58.10)]


@pytest.mark.slow  # two job processes, each importing dbt, one parsing from scratch (make test-fast leaves it out)
def test_entrypoint_starts_from_the_parse_made_before_it(ctx, tmp_path: Path):
    """What the image does: `dbt parse` at build time, then each execution reuses that parse."""
    batch_id = ingest_and_load(ctx, tmp_path)
    duckdb_path = Path(ctx.settings.warehouse[len("duckdb://") :])
    env = {
        **os.environ,
        "RETAIL_PIPELINE_DUCKDB_PATH": str(duckdb_path),
        "DBT_TARGET_PATH": str(tmp_path / "target"),
        "DBT_LOG_PATH": str(tmp_path / "logs"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    dbt = Path(sys.executable).parent / "dbt"
    baked = subprocess.run(
        [str(dbt), "parse", "--project-dir", str(DBT), "--profiles-dir", str(DBT), "--target", "local"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=tmp_path,
    )
    assert baked.returncode == 0, baked.stdout[-3000:]
    assert (tmp_path / "target" / "partial_parse.msgpack").exists()
    mark = len((tmp_path / "logs" / "dbt.log").read_text())
    proc = _entrypoint(
        ["--target", "local", "--vars", json.dumps({"batch_id": batch_id, "partitions": MONTHS})], duckdb_path, tmp_path
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["status"] == "success"
    log = (tmp_path / "logs" / "dbt.log").read_text()[mark:]
    assert "Running with dbt=" in log and "Unable to do partial parsing" not in log


def test_entrypoint_rejects_bad_vars_without_running_dbt(tmp_path: Path):
    proc = _entrypoint(
        ["--target", "local", "--vars", '{"batch_id": "b", "partitions": ["2011-1"]}'],
        tmp_path / "none.duckdb",
        tmp_path,
    )
    assert proc.returncode == 2
    line = json.loads(proc.stdout.strip().splitlines()[-1])
    # a failure as the log-based metric counts it (stage=transform, status=failed), with the reason
    assert (line["stage"], line["status"], line["severity"]) == ("transform", "failed", "ERROR")
    assert line["error"].startswith("bad request:") and "YYYY-MM" in line["error"]
    assert not (tmp_path / "none.duckdb").exists()
