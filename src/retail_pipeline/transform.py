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

DBT_PROJECT = Path(os.environ.get("RETAIL_PIPELINE_DBT_PROJECT") or Path(__file__).resolve().parents[2] / "dbt")
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
    """dbt build in this process, target ``local`` (DuckDB)."""

    def __init__(self, settings: Settings, project_dir: Path = DBT_PROJECT) -> None:
        self.settings = settings
        self.project_dir = project_dir
        if not settings.warehouse.startswith("duckdb://"):
            raise ValueError("the in-process dbt transformer runs on a duckdb:// warehouse")
        self.duckdb_path = settings.warehouse[len("duckdb://") :]

    def run(self, batch_id: str, partitions: list[str]) -> TransformResult:
        return self.build(["--vars", json.dumps({"batch_id": batch_id, "partitions": partitions})])

    def build(self, extra: list[str] | None = None, command: str = "build") -> TransformResult:
        from dbt.cli.main import dbtRunner

        os.environ["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
        os.environ["RETAIL_PIPELINE_DUCKDB_PATH"] = self.duckdb_path
        work = self.settings.home / "dbt"
        args = [command, "--project-dir", str(self.project_dir), "--profiles-dir", str(self.project_dir),
                "--target", "local", "--target-path", str(work / "target"), "--log-path", str(work / "logs"),
                "--quiet", *(extra or [])]
        started = time.monotonic()
        with _dbt_lock:
            outcome = dbtRunner().invoke(args)
        seconds = round(time.monotonic() - started, 3)
        if outcome.exception is not None:
            raise RuntimeError(f"dbt could not run: {outcome.exception}") from outcome.exception
        result = summarize(outcome.result.results if outcome.result is not None else [])
        return TransformResult(result.status, result.tests_passed, result.tests_failed, result.models_built, seconds,
                               result.error)


def open_transformer(settings: Settings):
    if settings.transform == "dbt":
        return DbtTransformer(settings)
    if settings.transform.startswith("cloudrun://"):
        from .cloudrun import CloudRunJobTransformer

        return CloudRunJobTransformer.from_url(settings.transform)
    raise ValueError(f"unknown transform {settings.transform!r}: use 'dbt' or cloudrun://PROJECT/REGION/JOB")
