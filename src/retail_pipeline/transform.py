"""Transformers: what runs the dbt project once a batch is complete.

- ``dbt`` (default): dbt in-process against the DuckDB warehouse (the embedded chain).
- ``cloudrun://PROJECT/REGION/JOB``: one Cloud Run job execution per batch, the batch passed in
  the container overrides (see cloudrun.py).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from .config import Settings
from .ports import TransformResult

_dbt_lock = threading.Lock()  # dbt's in-process runner is not re-entrant


def summarize(run_results) -> TransformResult:
    """Count tests and models in a dbt result list (RunResult objects or run_results.json dicts)."""
    passed = failed = models = 0
    errors = []
    for r in run_results:
        if isinstance(r, dict):
            resource, status, name, message = r["unique_id"].split(".")[0], r["status"], r["unique_id"], r.get("message")
        else:
            resource, status, name, message = r.node.resource_type, str(r.status), r.node.unique_id, r.message
        resource = str(resource).split(".")[-1].lower()
        status = status.split(".")[-1].lower()
        if resource in ("test", "unit_test"):
            if status == "pass":
                passed += 1
            elif status in ("fail", "error", "warn"):
                failed += 1
                errors.append(f"{name}: {message}")
        elif resource in ("model", "seed", "snapshot"):
            if status == "success":
                models += 1
            elif status == "error":
                errors.append(f"{name}: {message}")
    return TransformResult("success" if not errors else "failed", passed, failed, models, 0.0,
                           "; ".join(errors)[:4000] or None)


class DbtTransformer:
    """dbt build in this process: target ``local`` (DuckDB), or for a ``bigquery://`` warehouse the
    target ``emulator`` (BIGQUERY_EMULATOR_HOST set) or ``prod`` (BigQuery with ADC)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.project_dir = settings.dbt_project
        self.env: dict[str, str] = {}
        target = settings.warehouse_url
        if target.kind == "duckdb":
            self.target = "local"
            self.env["RETAIL_PIPELINE_DUCKDB_PATH"] = str(target.path)
        else:
            self.target = "emulator" if settings.endpoints.bigquery else "prod"
            self.env.update({"RETAIL_PIPELINE_GCP_PROJECT": target.project,
                             "RETAIL_PIPELINE_RAW_DATASET": target.raw_dataset,
                             "RETAIL_PIPELINE_PIPELINE_DATASET": target.pipeline_dataset,
                             "RETAIL_PIPELINE_ANALYTICS_DATASET": target.analytics_dataset,
                             "BIGQUERY_EMULATOR_HOST": settings.endpoints.bigquery or ""})

    def run(self, batch_ids: list[str], partitions: list[str], claim_key: str = "initial") -> TransformResult:
        return self.build(["--vars", json.dumps({"batch_id": batch_ids[0], "partitions": partitions})])

    def build(self, extra: list[str] | None = None, command: str = "build") -> TransformResult:
        from dbt.cli.main import dbtRunner

        os.environ["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
        os.environ.update(self.env)
        work = self.settings.home / "dbt"
        args = [command, "--project-dir", str(self.project_dir), "--profiles-dir", str(self.project_dir),
                "--target", self.target, "--target-path", str(work / "target"), "--log-path", str(work / "logs"),
                "--quiet", *(extra or [])]
        started = time.monotonic()
        with _dbt_lock:
            try:
                outcome = dbtRunner().invoke(args)
            finally:
                release_duckdb()
        seconds = round(time.monotonic() - started, 3)
        if outcome.exception is not None:
            # the project itself is broken (parse or compile error): permanent, recorded as a failed run;
            # retrying the message would only repeat it. Infrastructure errors raise before this point.
            return TransformResult("failed", 0, 0, 0, seconds, f"dbt could not run: {outcome.exception}"[:4000])
        result = summarize(outcome.result.results if outcome.result is not None else [])
        return TransformResult(result.status, result.tests_passed, result.tests_failed, result.models_built, seconds,
                               result.error)


def release_duckdb() -> None:
    """Close the DuckDB database dbt-duckdb keeps open in this process after a run, so other
    connections (read-only ones, other processes) can open the file again."""
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # dbt-duckdb not installed (a BigQuery-only deployment)
        return
    with DuckDBConnectionManager._LOCK:
        env = DuckDBConnectionManager._ENV
        DuckDBConnectionManager._ENV = None
        if env is not None:
            env.close()


def generate_docs(settings: Settings, out_dir: Path) -> Path:
    """Build the dbt docs site (lineage graph, models, columns, the docs blocks) into ``out_dir``,
    offline, against the home's DuckDB warehouse (its tables give the catalog; none is fine).
    Returns the single-file site (``static_index.html``; ``index.html`` needs a web server)."""
    from dbt.cli.main import dbtRunner

    if settings.warehouse_url.kind != "duckdb":
        raise ValueError("docs are generated against the embedded duckdb:// warehouse")
    project_dir = settings.dbt_project
    os.environ["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    os.environ["RETAIL_PIPELINE_DUCKDB_PATH"] = str(settings.warehouse_url.path)
    out_dir = Path(out_dir).resolve()
    args = ["docs", "generate", "--static", "--project-dir", str(project_dir), "--profiles-dir", str(project_dir),
            "--target", "local", "--target-path", str(out_dir), "--log-path", str(settings.home / "dbt" / "logs"),
            "--quiet"]
    with _dbt_lock:
        outcome = dbtRunner().invoke(args)
    if outcome.exception is not None or not outcome.success:
        raise RuntimeError(f"dbt docs generate failed: {outcome.exception or 'see the dbt log'}")
    site = out_dir / "static_index.html"
    if not site.exists():
        raise RuntimeError(f"dbt docs generate wrote no {site}")
    return site
