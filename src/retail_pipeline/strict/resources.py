"""Logical names (what terraform/*.tf grants on) and Google resource names (what a request touches).

The policy reads bindings such as "ingest may read ``bucket:landing``"; the gateway sees a request
on ``projects/_/buckets/retail-local-landing/objects/x.xlsx``. :class:`ResourceMap` joins the two:
logical resource -> full resource name, logical principal -> service account email. Full names
follow Google's own (the ones IAM conditions see in ``resource.name``):

- ``projects/P``
- ``projects/_/buckets/B`` and ``projects/_/buckets/B/objects/NAME``
- ``projects/P/datasets/D`` and ``projects/P/datasets/D/tables/T``
- ``projects/P/topics/T``, ``projects/P/subscriptions/S``
- ``projects/P/locations/R/jobs/J`` (Cloud Run job), ``.../services/S``, ``.../repositories/R``
- ``projects/P/serviceAccounts/EMAIL``
- ``projects/P/locations/L/keyRings/R/cryptoKeys/K`` (Cloud KMS; the chain itself uses no key)

A grant on a resource covers everything under it (object under bucket under project, table under
dataset under project, execution under job): :meth:`ResourceMap.ancestors`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ADMIN = "admin"  #: the logical principal that provisions (``terraform apply``): allowed everything


def bucket_name(bucket: str) -> str:
    return f"projects/_/buckets/{bucket}"


def object_name(bucket: str, name: str) -> str:
    return f"projects/_/buckets/{bucket}/objects/{name}"


def project_name(project: str) -> str:
    return f"projects/{project}"


def dataset_name(project: str, dataset: str) -> str:
    return f"projects/{project}/datasets/{dataset}"


def table_name(project: str, dataset: str, table: str) -> str:
    return f"projects/{project}/datasets/{dataset}/tables/{table}"


def run_job_name(project: str, region: str, job: str) -> str:
    return f"projects/{project}/locations/{region}/jobs/{job}"


def crypto_key_name(project: str, location: str, key_ring: str, key: str) -> str:
    return f"projects/{project}/locations/{location}/keyRings/{key_ring}/cryptoKeys/{key}"


def kms_location(bigquery_location: str) -> str:
    """The Cloud KMS location of a BigQuery location (terraform/kms.tf): "EU" -> "europe", "US" -> "us"."""
    return {"EU": "europe", "US": "us"}.get(bigquery_location.upper(), bigquery_location.lower())


@dataclass(frozen=True)
class ResourceMap:
    """Logical resource -> full resource name, logical principal -> email, for one deployment."""

    project: str
    resources: dict[str, str]  #: e.g. {"bucket:lake": "projects/_/buckets/p-retail-lake", "project": "projects/p"}
    principals: dict[str, str]  #: e.g. {"ingest": "retail-fn-ingest@p.iam.gserviceaccount.com", "admin": ...}
    project_number: str = "000000000000"  #: what ``data.google_project.this.number`` stands for
    _emails: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_emails", {email: logical for logical, email in self.principals.items()})

    @classmethod
    def for_chain(
        cls,
        project: str,
        landing_bucket: str,
        lake_bucket: str,
        dataset_prefix: str,
        topic: str,
        dbt_job: str,
        *,
        region: str = "europe-west1",
        name_prefix: str = "retail",
        function_sources_bucket: str | None = None,
        reports_bucket: str | None = None,
        project_number: str = "000000000000",
        admin_email: str | None = None,
        bigquery_location: str = "EU",
    ) -> ResourceMap:
        """The names terraform/main.tf derives, given the chain's actual buckets, datasets, topic and job.

        Service account emails follow terraform/iam.tf's account ids (``<prefix>-fn-<function>`` for
        ingest, load, transform and sweep, ``<prefix>-dbt-job``, ``<prefix>-fn-build``); Google's service
        agents get their documented addresses (``service-<number>@gcp-sa-<service>...``, BigQuery's
        ``bq-<number>@bigquery-encryption...``). The admin (the provisioner) is
        ``terraform@<project>...`` unless given. The Cloud KMS keys are the ones terraform/kms.tf
        creates when ``cmek.create_key`` is on: ``<prefix>-keys/<prefix>-data`` in REGION, and for
        BigQuery ``<prefix>-keys-bq/<prefix>-data-bq`` in BIGQUERY_LOCATION's KMS location when that
        differs from REGION (else the same key).
        """
        p = project_name(project)
        sa = f"{project}.iam.gserviceaccount.com"
        functions = {name: f"{name_prefix}-{name}" for name in ("ingest", "load", "transform", "sweep")}
        principals = {name: f"{name_prefix}-fn-{name}@{sa}" for name in functions}
        principals.update(
            {
                "dbt": f"{name_prefix}-dbt-job@{sa}",
                "functions_build": f"{name_prefix}-fn-build@{sa}",
                "pubsub_agent": f"service-{project_number}@gcp-sa-pubsub.iam.gserviceaccount.com",
                "gcs_agent": f"service-{project_number}@gs-project-accounts.iam.gserviceaccount.com",
                "eventarc_agent": f"service-{project_number}@gcp-sa-eventarc.iam.gserviceaccount.com",
                "artifactregistry_agent": f"service-{project_number}@gcp-sa-artifactregistry.iam.gserviceaccount.com",
                "bigquery_agent": f"bq-{project_number}@bigquery-encryption.iam.gserviceaccount.com",
                ADMIN: admin_email or f"terraform@{sa}",
            }
        )
        location = f"{p}/locations/{region}"
        resources = {
            "project": p,
            "bucket:landing": bucket_name(landing_bucket),
            "bucket:lake": bucket_name(lake_bucket),
            "bucket:function_sources": bucket_name(
                function_sources_bucket or f"{project}-{name_prefix}-function-sources"
            ),
            "bucket:reports": bucket_name(reports_bucket or f"{project}-{name_prefix}-reports"),
            "dataset:raw": dataset_name(project, f"{dataset_prefix}_raw"),
            "dataset:pipeline": dataset_name(project, f"{dataset_prefix}_pipeline"),
            "dataset:analytics": dataset_name(project, f"{dataset_prefix}_analytics"),
            "topic:partition_loaded": f"{p}/topics/{topic}",
            "topic:partition_loaded_dead_letter": f"{p}/topics/{topic}-dead-letter",
            "subscription:transform": f"{p}/subscriptions/{topic}-transform",
            "subscription:dead_letter": f"{p}/subscriptions/{topic}-dead-letter",
            "job:dbt": run_job_name(project, region, dbt_job),
            "repository:images": f"{location}/repositories/{name_prefix}-images",
            "cryptoKey:data": crypto_key_name(project, region, f"{name_prefix}-keys", f"{name_prefix}-data"),
        }
        bq_kms = kms_location(bigquery_location)
        resources["cryptoKey:bigquery"] = (
            resources["cryptoKey:data"]
            if bq_kms == region
            else crypto_key_name(project, bq_kms, f"{name_prefix}-keys-bq", f"{name_prefix}-data-bq")
        )
        for name, service in functions.items():
            resources[f"service:{name}"] = f"{location}/services/{service}"
        for name in (*functions, "dbt", "functions_build"):
            resources[f"serviceAccount:{name}"] = f"{p}/serviceAccounts/{principals[name]}"
        return cls(project=project, resources=resources, principals=principals, project_number=project_number)

    def resource(self, logical: str) -> str:
        """Full name of a logical resource; KeyError names the unknown one."""
        try:
            return self.resources[logical]
        except KeyError:
            raise KeyError(f"no resource {logical!r} in the resource map (known: {sorted(self.resources)})") from None

    def email(self, principal: str) -> str:
        try:
            return self.principals[principal]
        except KeyError:
            raise KeyError(
                f"no principal {principal!r} in the resource map (known: {sorted(self.principals)})"
            ) from None

    def principal_of(self, email: str) -> str | None:
        """The logical principal an email belongs to, or None for a stranger."""
        return self._emails.get(email)

    def ancestors(self, resource: str) -> list[str]:
        """RESOURCE and every resource above it, nearest first (a grant on any of them applies)."""
        parts = resource.split("/")
        chain = [resource]
        if len(parts) >= 4 and parts[0] == "projects" and parts[1] == "_" and parts[2] == "buckets":
            if len(parts) > 4:
                chain.append("/".join(parts[:4]))
            chain.append(project_name(self.project))  # the chain's buckets live in its project
            return chain
        if parts[0] != "projects" or len(parts) < 2:
            return chain
        for cut in range(len(parts) - 2, 1, -2):  # projects/P/a/A/b/B -> projects/P/a/A -> projects/P
            chain.append("/".join(parts[:cut]))
        return chain
