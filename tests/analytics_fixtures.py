"""Session fixtures shared by the analytics, report and dashboard tests (loaded from conftest.py).

- ``small_home``: one embedded run (DuckDB) of the small workbook through `retail-pipeline run`, with
  the month's report on (``RETAIL_PIPELINE_REPORTS=HOME/reports``, tests/test_report_publish.py);
- ``emulator_run``: one run of the same workbook on the emulator chain (GCS, Pub/Sub and BigQuery
  emulators, dbt-bigquery) with every storage event delivered twice in shuffled order (the
  warehouse must not notice: tests/test_emulator_chain.py), whose home records the chain, so the
  CLI reads BigQuery there;
- ``duckdb_sql`` / ``bigquery_sql``: direct queries of the marts, for comparisons.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent / "retail-pipeline"
EMULATOR_SUFFIX = "-an"


@pytest.fixture(scope="session")
def small_home(tmp_path_factory: pytest.TempPathFactory, small_workbook: Path) -> Path:
    """A home after one `retail-pipeline run` of the small workbook (its dashboard built by the run)."""
    home = tmp_path_factory.mktemp("small") / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETAIL_PIPELINE_")}
    env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    env["RETAIL_PIPELINE_REPORTS"] = str(home / "reports")  # the month's report after the build, into a folder
    proc = subprocess.run(
        [str(BIN), "--home", str(home), "run", str(small_workbook), "--timeout", "300"],
        capture_output=True,
        text=True,
        timeout=420,
        env=env,
    )
    assert proc.returncode == 0, f"run failed\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}"
    return home


class EveryEventTwiceShuffled:
    """Delivery faults: each storage event exactly twice, each poll's events in shuffled order."""

    def __init__(self, seed: int = 3) -> None:
        from retail_pipeline.faults import FaultPlan

        self.plan = FaultPlan(max_copies=2, shuffle=True, seed=seed)

    def __getattr__(self, name):
        return getattr(self.plan, name)

    def copies(self) -> int:
        return 2


@dataclass(frozen=True)
class EmulatorRun:
    home: Path  #: the home of the run (HOME/chain.json says: emulator chain)
    settings: object  #: the chain's Settings (warehouse bigquery://retail-local/retail_an)
    summary: dict  #: what run_on_emulators returned
    env: dict  #: the emulators' endpoints, for clients and child processes

    @property
    def analytics_dataset(self) -> str:
        target = self.settings.warehouse_url
        return f"{target.project}.{target.analytics_dataset}"


@pytest.fixture(scope="session")
def emulator_run(emulators, tmp_path_factory: pytest.TempPathFactory, small_workbook: Path) -> EmulatorRun:
    """The small workbook through the whole emulator chain, every storage event twice and shuffled;
    once per session."""
    from retail_pipeline.chain import emulator_settings, run_on_emulators
    from retail_pipeline.config import Settings

    home = tmp_path_factory.mktemp("emulator-analytics") / "home"
    summary = run_on_emulators(
        Settings.from_env(home, environ={}),
        [(small_workbook, "small.xlsx")],
        emulators=emulators,
        suffix=EMULATOR_SUFFIX,
        faults=EveryEventTwiceShuffled(),
        timeout=600,
    )
    assert summary["ok"], summary
    assert summary["dbt"]["status"] == "success" and summary["dbt"]["tests_failed"] == 0, summary["dbt"]
    return EmulatorRun(home, emulator_settings(home, emulators, EMULATOR_SUFFIX), summary, emulators.env())


@pytest.fixture(scope="session")
def duckdb_sql():
    """sql(db_file, statement, *params) → rows, on a read-only connection with schema analytics in use."""
    import duckdb

    def run(db_file: Path, statement: str, *params) -> list[tuple]:
        con = duckdb.connect(str(db_file), read_only=True)
        try:
            con.execute("USE analytics")
            return con.execute(statement, list(params)).fetchall()
        finally:
            con.close()

    return run


@pytest.fixture(scope="session")
def bigquery_sql(emulator_run: EmulatorRun):
    """sql(statement) → rows, on the emulator's BigQuery with the run's analytics dataset as default."""
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    project = emulator_run.analytics_dataset.split(".")[0]
    client = bigquery.Client(
        project=project,
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=emulator_run.env["BIGQUERY_EMULATOR_HOST"]),
    )
    config = bigquery.QueryJobConfig(default_dataset=emulator_run.analytics_dataset)

    def run(statement: str) -> list[tuple]:
        return [tuple(row.values()) for row in client.query(statement, job_config=config).result(timeout=120)]

    yield run
    client.close()
