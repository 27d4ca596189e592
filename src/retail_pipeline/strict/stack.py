"""The strict layer in front of a chain's emulators, as the emulator chain runs it.

Starts a gateway in front of the GCS emulator and one in front of the BigQuery emulator, and the
Cloud Run Admin stand-in whose ``retail-dbt`` job runs ``dbt/entrypoint.py`` as a separate
process; reads the grants from ``terraform/*.tf`` for the chain's actual names; and gives each
component the identity Terraform gives it (:meth:`StrictLayer.identities`). Every decision goes to
one audit log (``HOME/strict/audit.jsonl``), from which docs/deploy.md's role table is checked.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Endpoints, Settings
from ..identity import token_for
from .gateway import Gateway
from .policy import Policy
from .resources import ADMIN, ResourceMap
from .run_admin import JobDefinition, RunAdmin

TERRAFORM = Path(__file__).resolve().parents[3] / "terraform"
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  #: the folder holding retail_pipeline (the image's /app/src)
REGION = "europe-west1"  #: terraform/variables.tf's default region
DBT_JOB = "retail-dbt"  #: terraform/main.tf's dbt job name with the default prefix
COMPONENTS = ("ingest", "load", "transform", "dbt")


def dbt_job_env(settings: Settings) -> dict[str, str]:
    """What terraform/main.tf's ``dbt_env`` and ``dbt_report_env`` give the job, for this chain."""
    target = settings.warehouse_url
    return {
        "RETAIL_PIPELINE_GCP_PROJECT": target.project,
        "RETAIL_PIPELINE_ANALYTICS_DATASET": target.analytics_dataset,
        "RETAIL_PIPELINE_RAW_DATASET": target.raw_dataset,
        "RETAIL_PIPELINE_PIPELINE_DATASET": target.pipeline_dataset,
        "RETAIL_PIPELINE_BQ_LOCATION": settings.bigquery_location,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        # the report step after a successful build (empty RETAIL_PIPELINE_REPORTS: no report)
        "RETAIL_PIPELINE_HOME": str(settings.home / "dbt-job"),
        "RETAIL_PIPELINE_WAREHOUSE": settings.warehouse,
        "RETAIL_PIPELINE_REPORTS": settings.reports,
    }


@dataclass
class StrictLayer:
    """Gateways and the Run Admin stand-in for one chain (see the module docstring)."""

    gcs_upstream: str  #: the GCS emulator's URL
    bigquery_upstream: str  #: the BigQuery emulator's URL
    root: Path  #: audit log and the job executions' work folders
    tf_dir: Path = TERRAFORM
    policy: Policy | None = None
    servers: list[Gateway | RunAdmin] = field(default_factory=list)

    @property
    def audit_path(self) -> Path:
        return self.root / "audit.jsonl"

    def resource_map(self, settings: Settings) -> ResourceMap:
        target = settings.warehouse_url
        reports = settings.reports_url
        return ResourceMap.for_chain(
            target.project,
            settings.landing_url.bucket,
            settings.lake_url.bucket,
            target.prefix,
            settings.bus_url.topic,
            DBT_JOB,
            region=REGION,
            reports_bucket=reports.bucket.bucket if reports is not None else None,
        )

    def start(self, settings: Settings) -> Settings:
        """Start the layer for a chain on ``settings``; returns the settings that go through it."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.policy = Policy.from_terraform(self.tf_dir, self.resource_map(settings))
        project = settings.warehouse_url.project
        try:
            gcs = Gateway(self.gcs_upstream, "gcs", self.policy, self.audit_path)
            self.servers.append(gcs)
            gcs.start()
            bigquery = Gateway(self.bigquery_upstream, "bigquery", self.policy, self.audit_path)
            self.servers.append(bigquery)
            bigquery.start()
            through = settings.with_changes(
                transform=f"cloudrun://{project}/{REGION}/{DBT_JOB}",
                endpoints=Endpoints(
                    storage=gcs.url, bigquery=bigquery.url, pubsub=settings.endpoints.pubsub, project=project
                ),
            )
            run_admin = RunAdmin(
                self.policy, {DBT_JOB: self.dbt_job(through)}, self.audit_path, self.root / "executions", region=REGION
            )
            self.servers.append(run_admin)
            run_admin.start()
        except BaseException:
            self.stop()
            raise
        return through.with_changes(
            endpoints=Endpoints(
                storage=gcs.url,
                bigquery=bigquery.url,
                pubsub=settings.endpoints.pubsub,
                run_admin=run_admin.url,
                project=project,
            )
        )

    def dbt_job(self, settings: Settings) -> JobDefinition:
        """The Cloud Run job as terraform/dbt_job.tf defines it (the image's entrypoint, its env), pointed
        at the gateways with the dbt job's own identity; the pipeline package on the path, as in the image."""
        email = self.identities()["dbt"]
        endpoints = Endpoints(
            storage=settings.endpoints.storage, bigquery=settings.endpoints.bigquery, project=settings.endpoints.project
        )
        env = {
            **dbt_job_env(settings),
            **endpoints.to_env(),
            "DBT_TARGET": "emulator",
            "RETAIL_PIPELINE_ACCESS_TOKEN": token_for(email),
            "RETAIL_PIPELINE_IDENTITY": email,
            "PYTHONPATH": str(PACKAGE_ROOT),
            "DBT_TARGET_PATH": str(settings.home / "dbt-job" / "target"),
            "DBT_LOG_PATH": str(settings.home / "dbt-job" / "logs"),
        }
        entrypoint = settings.dbt_project / "entrypoint.py"
        return JobDefinition(
            command=[sys.executable, str(entrypoint)], env=env, cwd=settings.dbt_project, preload="dbt-job"
        )

    def identities(self) -> dict[str, str]:
        """Component → the service account email Terraform gives it."""
        assert self.policy is not None, "start the layer first"
        principals = self.policy.resources.principals
        return {name: principals[name] for name in COMPONENTS}

    @property
    def admin(self) -> str:
        """The deployer (what `terraform apply` runs as): provisions the chain's buckets and tables."""
        assert self.policy is not None, "start the layer first"
        return self.policy.resources.principals[ADMIN]

    def executing(self) -> bool:
        """Whether a job execution is running."""
        return any(isinstance(server, RunAdmin) and server.running() for server in self.servers)

    def wait_for_executions(self, timeout: float) -> None:
        """Let the job executions still running end (their work after the recorded outcome: the report)."""
        for server in self.servers:
            if isinstance(server, RunAdmin):
                server.wait_all(timeout)

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()
        self.servers.clear()
