"""Transformers: what runs the dbt project once a batch is complete.

- ``dbt`` (default): dbt in this machine's dbt worker process (:mod:`.dbt_worker`) against the
  DuckDB warehouse (the embedded chain), or the BigQuery emulator / BigQuery.
- ``cloudrun://PROJECT/REGION/JOB``: one Cloud Run job execution per batch, the batch passed in
  the container overrides (see cloudrun.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from .config import Settings
from .dbt_session import DbtRequest
from .dbt_worker import worker
from .ports import TransformResult

#: the environment variables the dbt project reads (profiles.yml and the sources' schemas)
DBT_ENV_NAMES = (
    "DBT_SEND_ANONYMOUS_USAGE_STATS",
    "RETAIL_PIPELINE_DUCKDB_PATH",
    "RETAIL_PIPELINE_GCP_PROJECT",
    "RETAIL_PIPELINE_RAW_DATASET",
    "RETAIL_PIPELINE_PIPELINE_DATASET",
    "RETAIL_PIPELINE_ANALYTICS_DATASET",
    "RETAIL_PIPELINE_BQ_LOCATION",
    "BIGQUERY_EMULATOR_HOST",
    "RETAIL_PIPELINE_MAX_DATA_AGE_HOURS",
)


def dbt_env(settings: Settings) -> dict[str, str | None]:
    """The dbt project's environment (profiles.yml and the sources read these), from the settings;
    every name is listed, set or unset, so nothing of the calling process leaks in."""
    env: dict[str, str | None] = {name: None for name in DBT_ENV_NAMES}
    env.update(
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
        RETAIL_PIPELINE_BQ_LOCATION=settings.bigquery_location,
        RETAIL_PIPELINE_MAX_DATA_AGE_HOURS=str(settings.max_data_age_hours),
    )
    target = settings.warehouse_url
    if target.kind == "duckdb":
        assert target.path is not None
        env["RETAIL_PIPELINE_DUCKDB_PATH"] = target.path.name
    else:
        env.update(
            {
                "RETAIL_PIPELINE_GCP_PROJECT": target.project,
                "RETAIL_PIPELINE_RAW_DATASET": target.raw_dataset,
                "RETAIL_PIPELINE_PIPELINE_DATASET": target.pipeline_dataset,
                "RETAIL_PIPELINE_ANALYTICS_DATASET": target.analytics_dataset,
                "BIGQUERY_EMULATOR_HOST": settings.endpoints.bigquery,
            }
        )
    return env


def summarize(run_results, violated: dict[str, str] | None = None) -> TransformResult:
    """Count tests and models in a dbt result list (RunResult objects or run_results.json dicts);
    ``violated`` names the violated checks of failed row_rules tests (see :mod:`.dbt_rules`)."""
    passed = failed = models = 0
    errors = []
    for r in run_results:
        if isinstance(r, dict):
            resource, status, name, message = (
                r["unique_id"].split(".")[0],
                r["status"],
                r["unique_id"],
                r.get("message"),
            )
        else:
            resource, status, name, message = r.node.resource_type, str(r.status), r.node.unique_id, r.message
        resource = str(resource).split(".")[-1].lower()
        status = status.split(".")[-1].lower()
        if resource in ("test", "unit_test"):
            if status == "pass":
                passed += 1
            elif status in ("fail", "error", "warn"):
                failed += 1
                rules = (violated or {}).get(name)
                errors.append(f"{name}: {message}" + (f" (violated: {rules})" if rules else ""))
        elif resource in ("model", "seed", "snapshot"):
            if status == "success":
                models += 1
            elif status == "error":
                errors.append(f"{name}: {message}")
    return TransformResult(
        "success" if not errors else "failed", passed, failed, models, 0.0, "; ".join(errors)[:4000] or None
    )


class DbtTransformer:
    """dbt build for the home's warehouse: target ``local`` (DuckDB), or for a ``bigquery://``
    warehouse the target ``emulator`` (BIGQUERY_EMULATOR_HOST set) or ``prod`` (BigQuery with ADC).

    A batch's run queues the batch's invoice months in the transform slice table (``dbt
    run-operation queue_transform_slice``), then runs the production build: models and data
    tests, not unit tests (those run in the test suite). dbt runs in this process's dbt worker
    (:mod:`.dbt_worker`), which keeps the parsed project between batches; no ``--vars`` changes
    from batch to batch, so dbt's saved parse in ``HOME/dbt/target`` stays valid too."""

    #: what a production build leaves out: unit tests check the models' logic on fixed rows,
    #: in development and CI (``make test``), not on every batch
    PRODUCTION_EXCLUDE = ("--exclude", "resource_type:unit_test")

    def __init__(self, settings: Settings, before_run: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self.before_run = before_run  #: called before dbt runs (dbt-duckdb opens the warehouse file itself)
        self.project_dir = settings.dbt_project
        self.env = dbt_env(settings)
        self.workdir: Path | None = None
        target = settings.warehouse_url
        if target.kind == "duckdb":
            assert target.path is not None
            self.target = "local"
            # dbt runs in the warehouse's folder and names the file relative to it: the profile then
            # renders the same for every home, so one home's saved parse is valid for the next one
            self.workdir = target.path.resolve().parent
        else:
            self.target = "emulator" if settings.endpoints.bigquery else "prod"
        work = settings.home / "dbt"
        self.common_args = (
            "--project-dir",
            str(self.project_dir),
            "--profiles-dir",
            str(self.project_dir),
            "--target",
            self.target,
            "--target-path",
            str(work / "target"),
            "--log-path",
            str(work / "logs"),
            "--quiet",
            "--log-level-file",
            "info",
        )

    def _request(self, *commands: tuple[tuple[str, ...], tuple[str, ...]]) -> DbtRequest:
        return DbtRequest(self.project_dir, self.common_args, tuple(sorted(self.env.items())), commands, self.workdir)

    def warm_up(self) -> None:
        """Start dbt's worker and let it import dbt and parse the project now, in the background,
        so the first batch does not wait for it."""
        worker().send_ahead(self._request())

    def ensure_idle(self) -> None:
        pass  # the dbt worker runs one request at a time: a second one waits its turn

    def run(self, batch_ids: list[str], partitions: list[str], claim_key: str = "initial") -> TransformResult:
        """Queue the batches' months, then the production build (models and data tests)."""
        queue = json.dumps({"batch_id": batch_ids[0], "months": sorted(set(partitions))})
        return self._call(
            (("run-operation",), ("queue_transform_slice", "--args", queue)), (("build",), self.PRODUCTION_EXCLUDE)
        )

    def build(self, extra: list[str] | None = None, command: str = "build") -> TransformResult:
        """Any dbt command (``build``, ``run``, ``test``...) with extra arguments, e.g. selectors."""
        return self._call(((command,), tuple(extra or ())))

    def _call(self, *commands: tuple[tuple[str, ...], tuple[str, ...]]) -> TransformResult:
        started = time.monotonic()
        if self.before_run is not None:
            self.before_run()
        reply = worker().call(self._request(*commands))
        return TransformResult(
            reply.status,
            reply.tests_passed,
            reply.tests_failed,
            reply.models_built,
            round(time.monotonic() - started, 3),
            reply.error,
        )


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
    offline, against the home's DuckDB warehouse (its tables give the catalog; none is fine), in a
    dbt child process with the environment built from the settings. Returns the single-file site
    (``static_index.html``; ``index.html`` needs a web server)."""
    import subprocess
    import sys

    from .config import child_env

    target = settings.warehouse_url
    if target.kind != "duckdb" or target.path is None:
        raise ValueError("docs are generated against the embedded duckdb:// warehouse")
    project_dir = settings.dbt_project
    out_dir = Path(out_dir).resolve()
    env = {**child_env(settings), **{k: v for k, v in dbt_env(settings).items() if v is not None}}
    args = [
        str(Path(sys.executable).parent / "dbt"),
        "docs",
        "generate",
        "--static",
        "--project-dir",
        str(project_dir),
        "--profiles-dir",
        str(project_dir),
        "--target",
        "local",
        "--target-path",
        str(out_dir),
        "--log-path",
        str(settings.home / "dbt" / "logs"),
        "--quiet",
    ]
    proc = subprocess.run(
        args, env=env, cwd=target.path.resolve().parent, capture_output=True, text=True, timeout=900, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"dbt docs generate failed: {(proc.stdout + proc.stderr).strip()[-2000:] or 'see the dbt log'}"
        )
    site = out_dir / "static_index.html"
    if not site.exists():
        raise RuntimeError(f"dbt docs generate wrote no {site}")
    return site
