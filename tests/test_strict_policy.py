"""The strict layer offline: terraform/*.tf read as IAM grants, roles.json, Policy.check, identities,
and the SQL table references the BigQuery rules check. No emulator needed."""

from __future__ import annotations

import json
from importlib import resources as importlib_resources
from pathlib import Path

import hcl2
import pytest

from retail_pipeline.identity import ServiceAccountIdentity, account_from_authorization, token_for
from retail_pipeline.strict.hcl_expr import split_conditional
from retail_pipeline.strict.policy import Policy, predefined_roles
from retail_pipeline.strict.resources import ResourceMap
from retail_pipeline.strict.sql_refs import table_uses
from retail_pipeline.strict.terraform_iam import TerraformIamError

REPO = Path(__file__).resolve().parents[1]
TF = REPO / "terraform"
PROJECT = "retail-test-1"


@pytest.fixture(scope="module")
def rmap() -> ResourceMap:
    return ResourceMap.for_chain(PROJECT, "t-landing", "t-lake", "t", "partition-loaded", "retail-dbt")


@pytest.fixture(scope="module")
def policy(rmap: ResourceMap) -> Policy:
    return Policy.from_terraform(TF, rmap)


def _email(rmap: ResourceMap, who: str) -> str:
    return rmap.email(who)


# --- terraform/*.tf ---------------------------------------------------------------------------


def _iam_grant_count() -> int:
    """Grants as Terraform would create them: one per *_iam_member resource and for_each entry (a map
    literal, or ``local.NAME`` holding one); a ``count = flag ? 1 : 0`` grant counts once (flag on)."""
    docs = []
    for path in TF.glob("*.tf"):
        with path.open() as handle:
            docs.append(hcl2.load(handle))
    local_maps = {
        name: value
        for doc in docs
        for block in doc.get("locals", [])
        for name, value in block.items()
        if isinstance(value, dict)
    }
    count = 0
    for doc in docs:
        for block in doc.get("resource", []):
            for rtype, named in block.items():
                if not rtype.strip('"').endswith("_iam_member"):
                    continue
                for body in named.values():
                    for_each = body.get("for_each")  # a map literal, or an expression string
                    if isinstance(for_each, str) and for_each.startswith("${local."):
                        for_each = local_maps[for_each[len("${local.") : -1]]
                    count += len(for_each) if isinstance(for_each, dict) else 1
    return count


def test_every_terraform_grant_resolves_to_a_principal_a_documented_role_and_a_resource(policy, rmap):
    assert len(policy.grants) == _iam_grant_count() > 0
    roles = predefined_roles()
    resource_names = set(rmap.resources.values())
    for grant in policy.grants:
        assert grant.email in rmap.principals.values(), grant.binding
        assert grant.binding.role in roles, grant.binding
        assert grant.permissions == roles[grant.binding.role]
        assert grant.resource in resource_names, grant.binding


def test_the_conditional_grant_is_read_with_the_actual_bucket_name(policy, rmap):
    conditional = [g for g in policy.grants if g.name_prefix is not None and "landing" in g.resource]
    assert conditional, "terraform/iam.tf has no conditional grant on the landing bucket any more"
    for grant in conditional:
        assert grant.name_prefix.startswith("projects/_/buckets/t-landing/objects/")


def test_a_principal_terraform_does_not_know_fails_loudly(rmap):
    snippet = """
resource "google_storage_bucket_iam_member" "x" {
  bucket = google_storage_bucket.lake.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.mystery.email}"
}"""
    with pytest.raises(TerraformIamError, match="mystery"):
        Policy.from_hcl(snippet, rmap)


DBT = 'member = "serviceAccount:${google_service_account.dbt.email}"\n'


@pytest.mark.parametrize(
    "body, message",
    [
        (
            'bucket = google_storage_bucket.lake.name\n role = "roles/storage.objectViewer"\n member = var.reader',
            "principal",
        ),
        ('bucket = var.some_bucket\n role = "roles/storage.objectViewer"\n member = local.dbt_member', "resource"),
        (DBT + 'bucket = google_storage_bucket.lake.name\n role = "roles/storage.madeUp"', "roles.json"),
        (
            DBT + 'bucket = google_storage_bucket.lake.name\n role = "roles/storage.objectViewer"\n'
            'condition {\n title = "t"\n expression = "request.time < timestamp(\\"2030-01-01T00:00:00Z\\")"\n }',
            "unsupported IAM condition",
        ),
        (DBT + 'count = 1\n bucket = google_storage_bucket.lake.name\n role = "roles/storage.objectViewer"', "count"),
    ],
)
def test_unknown_expressions_fail_loudly(rmap, body, message):
    snippet = f'resource "google_storage_bucket_iam_member" "x" {{\n {body}\n}}\n'
    with pytest.raises(TerraformIamError, match=message):
        Policy.from_hcl(snippet, rmap)


def test_authoritative_iam_policies_are_refused(rmap):
    snippet = """
resource "google_storage_bucket_iam_policy" "x" {
  bucket      = google_storage_bucket.lake.name
  policy_data = data.google_iam_policy.lake.policy_data
}"""
    with pytest.raises(TerraformIamError, match="does not read google_storage_bucket_iam_policy"):
        Policy.from_hcl(snippet, rmap)


def test_for_each_maps_bindings_and_custom_roles(rmap):
    snippet = """
locals {
  dbt_member = "serviceAccount:${google_service_account.dbt.email}"
}
resource "google_project_iam_custom_role" "runs_reader" {
  role_id     = "runsReader"
  title       = "Reads executions"
  permissions = ["run.executions.get", "run.operations.get"]
}
resource "google_project_iam_member" "readers" {
  for_each = {
    load = "serviceAccount:${google_service_account.function["load"].email}"
    dbt  = local.dbt_member
  }
  project = var.project_id
  role    = google_project_iam_custom_role.runs_reader.id
  member  = each.value
}
resource "google_bigquery_dataset_iam_binding" "raw_viewers" {
  dataset_id = google_bigquery_dataset.raw.dataset_id
  role       = "roles/bigquery.dataViewer"
  members    = ["serviceAccount:${google_service_account.function["ingest"].email}", local.dbt_member]
}"""
    policy = Policy.from_hcl(snippet, rmap)
    execution = f"projects/{PROJECT}/locations/europe-west1/jobs/retail-dbt/executions/retail-dbt-abcde"
    for who in ("load", "dbt"):
        assert policy.check(_email(rmap, who), "run.executions.get", execution).allowed
        assert not policy.check(_email(rmap, who), "run.jobs.run", execution).allowed
    raw_table = f"projects/{PROJECT}/datasets/t_raw/tables/sales_lines"
    for who in ("ingest", "dbt"):
        assert policy.check(_email(rmap, who), "bigquery.tables.getData", raw_table).allowed
    assert not policy.check(_email(rmap, "load"), "bigquery.tables.getData", raw_table).allowed


def test_the_sweep_and_the_service_agents_have_their_terraform_grants(policy, rmap):
    sa = f"{PROJECT}.iam.gserviceaccount.com"
    assert rmap.email("sweep") == f"retail-fn-sweep@{sa}"  # account_id "${local.prefix}-fn-${each.key}"
    assert rmap.email("eventarc_agent") == "service-000000000000@gcp-sa-eventarc.iam.gserviceaccount.com"
    sweep, eventarc = rmap.email("sweep"), rmap.email("eventarc_agent")
    services = f"projects/{PROJECT}/locations/europe-west1/services"
    # the sweep re-drives by rewriting objects (a new generation fires the platform's own event),
    # not by calling the functions: it may invoke only itself (Cloud Scheduler's call)
    assert policy.check(sweep, "run.routes.invoke", f"{services}/retail-sweep").allowed
    for service in ("retail-ingest", "retail-load", "retail-transform"):
        assert not policy.check(sweep, "run.routes.invoke", f"{services}/{service}").allowed, service
    assert policy.check(sweep, "storage.objects.list", "projects/_/buckets/t-landing").allowed
    assert policy.check(sweep, "storage.objects.create", "projects/_/buckets/t-landing/objects/x.xlsx").allowed
    assert policy.check(sweep, "bigquery.tables.getData", f"projects/{PROJECT}/datasets/t_pipeline/tables/x").allowed
    assert not policy.check(
        sweep, "bigquery.tables.updateData", f"projects/{PROJECT}/datasets/t_pipeline/tables/x"
    ).allowed
    assert policy.check(sweep, "pubsub.topics.publish", f"projects/{PROJECT}/topics/partition-loaded").allowed
    assert policy.check(eventarc, "pubsub.topics.create", f"projects/{PROJECT}").allowed
    assert not policy.check(sweep, "pubsub.topics.create", f"projects/{PROJECT}").allowed


def test_the_cmek_grants_are_read_on_the_keys_terraform_creates(policy, rmap):
    data_key = f"projects/{PROJECT}/locations/europe-west1/keyRings/retail-keys/cryptoKeys/retail-data"
    bigquery_key = f"projects/{PROJECT}/locations/europe/keyRings/retail-keys-bq/cryptoKeys/retail-data-bq"
    assert rmap.email("bigquery_agent") == "bq-000000000000@bigquery-encryption.iam.gserviceaccount.com"
    kms = {
        g.binding.address: (g.email, g.resource) for g in policy.grants if g.binding.address.startswith("google_kms")
    }
    assert kms == {
        "google_kms_crypto_key_iam_member.gcs_agent[0]": (rmap.email("gcs_agent"), data_key),
        "google_kms_crypto_key_iam_member.pubsub_agent[0]": (rmap.email("pubsub_agent"), data_key),
        "google_kms_crypto_key_iam_member.artifactregistry_agent[0]": (
            "service-000000000000@gcp-sa-artifactregistry.iam.gserviceaccount.com",
            data_key,
        ),
        "google_kms_crypto_key_iam_member.bigquery_agent[0]": (rmap.email("bigquery_agent"), bigquery_key),
    }
    assert policy.check(
        rmap.email("bigquery_agent"), "cloudkms.cryptoKeyVersions.useToEncrypt", f"{bigquery_key}/cryptoKeyVersions/1"
    ).allowed
    assert not policy.check(rmap.email("gcs_agent"), "cloudkms.cryptoKeyVersions.useToEncrypt", bigquery_key).allowed
    assert not policy.check(rmap.email("ingest"), "cloudkms.cryptoKeyVersions.useToDecrypt", data_key).allowed
    # a BigQuery location that is also the key's region: one key for everything, as kms.tf has it
    same = ResourceMap.for_chain(
        PROJECT, "t-landing", "t-lake", "t", "partition-loaded", "retail-dbt", bigquery_location="europe-west1"
    )
    assert same.resource("cryptoKey:bigquery") == same.resource("cryptoKey:data") == data_key


CMEK = """
locals {
  on    = var.cmek.create_key || var.cmek.kms_key_name != null
  key   = var.cmek.create_key ? one(google_kms_crypto_key.data[*].id) : local.given
  given = var.cmek.kms_key_name != null ? var.cmek.kms_key_name : ""
  agent = local.on ? "serviceAccount:${one(google_project_service_identity.artifactregistry[*].email)}" : ""
}
resource "google_kms_crypto_key" "data" {
  count    = var.cmek.create_key ? 1 : 0
  name     = "k"
  key_ring = "r"
}
resource "google_kms_crypto_key_iam_member" "x" {
  COUNT
  crypto_key_id = KEY
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = MEMBER
}
"""


def _cmek(count: str = "count = local.on ? 1 : 0", key: str = "local.key", member: str = "local.agent") -> str:
    return CMEK.replace("COUNT", count).replace("KEY", key).replace("MEMBER", member)


def test_a_grant_switched_on_by_a_flag_is_read_once(rmap):
    for key in ("local.key", "google_kms_crypto_key.data[0].id", '(local.on ? local.key : "")'):
        policy = Policy.from_hcl(_cmek(key=key), rmap)
        assert [(g.binding.address, g.binding.principal, g.binding.resource) for g in policy.grants] == [
            ("google_kms_crypto_key_iam_member.x[0]", "artifactregistry_agent", "cryptoKey:data")
        ], key


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"count": "count = local.on ? 2 : 0"}, "count"),
        ({"count": "count = length(var.keys)"}, "count"),
        ({"key": "var.cmek.kms_key_name"}, "names no google_kms_crypto_key"),
        ({"key": "google_kms_crypto_key.other[0].id"}, "no resource google_kms_crypto_key.other"),
        ({"key": "local.on ? local.key : data.google_kms_crypto_key.k.id"}, "cannot tell which crypto key"),
        (
            {"member": 'local.on ? local.agent : "serviceAccount:${google_service_account.dbt.email}"'},
            "does not name exactly one",
        ),
        ({"member": "one(google_project_service_identity.artifactregistry[*].name)"}, "principal"),
    ],
)
def test_unknown_cmek_expressions_fail_loudly(rmap, kwargs, message):
    with pytest.raises(TerraformIamError, match=message):
        Policy.from_hcl(_cmek(**kwargs), rmap)


@pytest.mark.parametrize(
    "expr, expected",
    [
        ("a", None),
        ("a ? b : c", ("a", "b", "c")),
        ('(x == "a:b?" ? (p ? q : r) : s)', ('x == "a:b?"', "p ? q : r", "s")),
        ("a ? b ? c : d : e ? f : g", ("a", "b ? c : d", "e ? f : g")),
        ('f ? "serviceAccount:${one(x[*].email)}" : ""', ("f", '"serviceAccount:${one(x[*].email)}"', '""')),
        ('{ a = 1 }["a"] == 1 ? "${y ? 1 : 2}" : z', ('{ a = 1 }["a"] == 1', '"${y ? 1 : 2}"', "z")),
        ("(a) ? (b) : (c)", ("(a)", "b", "c")),
    ],
)
def test_hcl_conditionals_split_at_their_top_level(expr, expected):
    assert split_conditional(expr) == expected


# --- Policy.check -----------------------------------------------------------------------------

SNIPPET = """
locals {
  reports = "projects/_/buckets/${google_storage_bucket.landing.name}/objects/rejected/"
}
resource "google_storage_bucket_iam_member" "reports" {
  bucket = google_storage_bucket.landing.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.function["ingest"].email}"
  condition {
    title      = "rejected"
    expression = "resource.name.startsWith(\\"${local.reports}\\")"
  }
}
resource "google_bigquery_dataset_iam_member" "raw" {
  dataset_id = google_bigquery_dataset.raw.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = "serviceAccount:${google_service_account.function["load"].email}"
}
resource "google_project_iam_member" "jobs" {
  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = "serviceAccount:${google_service_account.function["load"].email}"
}
"""


def test_check_follows_the_resource_hierarchy_and_conditions(rmap):
    policy = Policy.from_hcl(SNIPPET, rmap)
    ingest, load = _email(rmap, "ingest"), _email(rmap, "load")
    landing = "projects/_/buckets/t-landing"
    allowed = policy.check(ingest, "storage.objects.create", f"{landing}/objects/rejected/2011.xlsx.json")
    assert allowed.allowed and "google_storage_bucket_iam_member.reports" in allowed.granted_by
    assert allowed.binding == "google_storage_bucket_iam_member.reports"
    assert not policy.check(ingest, "storage.objects.create", f"{landing}/objects/2011.xlsx").allowed
    assert not policy.check(ingest, "storage.objects.list", landing).allowed  # a bucket is not under rejected/
    raw_table = f"projects/{PROJECT}/datasets/t_raw/tables/sales_lines"
    assert policy.check(load, "bigquery.tables.updateData", raw_table).allowed
    other_table = f"projects/{PROJECT}/datasets/t_pipeline/tables/x"
    assert not policy.check(load, "bigquery.tables.updateData", other_table).allowed
    assert not policy.check(load, "bigquery.datasets.create", f"projects/{PROJECT}").allowed  # dataset-level grant
    assert policy.check(load, "bigquery.jobs.create", f"projects/{PROJECT}").allowed
    assert not policy.check("stranger@example.com", "bigquery.jobs.create", f"projects/{PROJECT}").allowed
    admin = policy.check(_email(rmap, "admin"), "bigquery.datasets.create", f"projects/{PROJECT}")
    assert admin.allowed and admin.granted_by.startswith("admin")


# --- roles.json -------------------------------------------------------------------------------


def test_roles_json_names_its_sources_and_the_documented_permissions():
    data = json.loads(importlib_resources.files("retail_pipeline.strict").joinpath("roles.json").read_text())
    assert data["_note"]
    for name, role in data["roles"].items():
        assert name.startswith("roles/") and role["permissions"], name
        assert role["source"].startswith("https://cloud.google.com/iam/docs/roles-permissions/"), name
    roles = predefined_roles()
    viewer, user = roles["roles/storage.objectViewer"], roles["roles/storage.objectUser"]
    assert {"storage.objects.get", "storage.objects.list"} <= viewer and "storage.objects.create" not in viewer
    assert {
        "storage.objects.create",
        "storage.objects.delete",
        "storage.objects.get",
        "storage.objects.list",
        "storage.objects.update",
    } <= user
    assert "storage.buckets.get" not in viewer | user
    data_viewer, data_editor = roles["roles/bigquery.dataViewer"], roles["roles/bigquery.dataEditor"]
    assert {
        "bigquery.tables.getData",
        "bigquery.tables.get",
        "bigquery.tables.list",
        "bigquery.datasets.get",
    } <= data_viewer
    assert "bigquery.tables.updateData" not in data_viewer
    assert {
        "bigquery.tables.create",
        "bigquery.tables.updateData",
        "bigquery.tables.update",
        "bigquery.tables.delete",
    } <= data_editor
    assert "bigquery.jobs.create" in roles["roles/bigquery.jobUser"]
    assert {"run.jobs.run", "run.routes.invoke"} <= roles["roles/run.invoker"]
    assert "run.jobs.runWithOverrides" not in roles["roles/run.invoker"] | roles["roles/run.jobsExecutor"]
    assert "run.jobs.runWithOverrides" in roles["roles/run.jobsExecutorWithOverrides"] & roles["roles/run.developer"]


# --- identity ---------------------------------------------------------------------------------


def test_identity_token_names_the_account_and_needs_no_network():
    creds = ServiceAccountIdentity("retail-fn-load@p.iam.gserviceaccount.com")
    creds.refresh(None)  # no transport: nothing is fetched
    headers: dict[str, str] = {}
    creds.apply(headers)
    assert headers["authorization"] == "Bearer local-sa:retail-fn-load@p.iam.gserviceaccount.com"
    assert creds.valid and not creds.expired
    assert token_for("a@b.c") == "local-sa:a@b.c"
    assert account_from_authorization(headers["authorization"]) == "retail-fn-load@p.iam.gserviceaccount.com"
    for bad in (None, "", "Bearer ya29.real-token", "Basic local-sa:a@b.c", "Bearer local-sa:not-an-email"):
        assert account_from_authorization(bad) is None
    with pytest.raises(ValueError, match="not a service account email"):
        ServiceAccountIdentity("nobody")


# --- SQL table references ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql, expected",
    [
        ("SELECT 1", []),
        (
            "SELECT a.x FROM `p.ds.t` a JOIN ds2.u b USING (id) WHERE a.s = 'FROM x.y' -- FROM c.d",
            [("read", "p", "ds", "t"), ("read", "q", "ds2", "u")],
        ),
        (
            (
                "BEGIN TRANSACTION;\nINSERT INTO `p.pl.runs` (a) SELECT 1 FROM (SELECT 1) WHERE NOT EXISTS (SELECT 1 "
                "FROM `p.pl.runs`);\nCOMMIT TRANSACTION;"
            ),
            [("insert", "p", "pl", "runs"), ("read", "p", "pl", "runs")],
        ),
        ("UPDATE `p`.`pl`.`runs` SET state = 'x' WHERE true", [("modify", "p", "pl", "runs")]),
        (
            "DELETE FROM raw.sales WHERE batch_id = 'b'",
            [("modify", "q", "raw", "sales"), ("read", "q", "raw", "sales")],
        ),
        (
            "create or replace table `p`.`an`.`fct` as (with s as (select * from `p`.`raw`.`sales`) select * from s)",
            [("create", "p", "an", "fct"), ("read", "p", "raw", "sales")],
        ),
        ("DROP TABLE IF EXISTS `p.pl._stage_x`", [("drop", "p", "pl", "_stage_x")]),
        ("TRUNCATE TABLE p.pl.t", [("truncate", "p", "pl", "t")]),
        ("CREATE SCHEMA IF NOT EXISTS `p`.`an`", [("dataset_create", "p", "an", None)]),
        ("select * from `p`.`an`.INFORMATION_SCHEMA.COLUMNS", [("metadata", "p", "an", None)]),
        ("CREATE TEMP TABLE stage AS SELECT * FROM raw.x", [("read", "q", "raw", "x")]),
    ],
)
def test_sql_table_uses(sql, expected):
    assert [(u.kind, u.project, u.dataset, u.table) for u in table_uses(sql, "q")] == expected
