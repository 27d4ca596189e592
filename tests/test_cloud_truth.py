"""Cloud truth (issue 11): the emulator chain runs as its Terraform identities behind the strict
layer, which refuses what Google Cloud refuses, and the deployed grants are exactly what it needs.

One strict run of the small workbook, with every storage event delivered twice and the two new
crash points (a load whose job is done but whose transaction never ran; a transform that won its
claim and then failed), is shared by the tests below: its summary, and the strict layer's audit
log of every call each identity made.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

from helpers import run_cli

pytestmark = pytest.mark.emulator

REPO = Path(__file__).resolve().parents[1]
#: grants the local chain cannot exercise, because what uses them is the platform itself (Eventarc and
#: Pub/Sub pushing to the functions, Cloud Build, Cloud Scheduler, CMEK) or a part not yet run locally
PLATFORM_GRANTS = {
    "eventarc.eventReceiver": "Eventarc checks it when a trigger delivers as the function's account",
    "run.invoker": "Eventarc / the push subscription / Cloud Scheduler invoke a function's service with an OIDC token",
    "iam.serviceAccountTokenCreator": "the Pub/Sub service agent mints the push subscription's OIDC tokens",
    "pubsub.subscriber": "the Pub/Sub service agent forwards undeliverable messages to the dead-letter topic",
    "pubsub.publisher": "publishing is not checked locally (the Pub/Sub emulator speaks plaintext gRPC)",
    "cloudkms.cryptoKeyEncrypterDecrypter": "customer-managed keys: no KMS on the laptop",
    "eventarc.serviceAgent": "the Eventarc agent's own role",
    "artifactregistry.reader": "Cloud Run pulls the dbt image",
    "storage.objectViewer@functions_build": "Cloud Build reads the function sources",
    "logging.logWriter@functions_build": "Cloud Build writes the function builds' logs",
    "artifactregistry.writer@functions_build": "Cloud Build pushes the function images",
    "storage.objectViewer@load": "the load function reads a landing object only when one is deleted (retraction; "
    "tests/test_retract_emulators.py checks it on the strict chain), which this run does not do",
}


@pytest.fixture(scope="module")
def strict_run(emulators, tmp_path_factory, small_workbook) -> dict:
    from retail_pipeline.chain import run_on_emulators
    from retail_pipeline.config import Settings
    from retail_pipeline.faults import FaultPlan

    home = tmp_path_factory.mktemp("strict") / "home"
    not_a_workbook = home.parent / "notes.xlsx"
    not_a_workbook.write_bytes(b"minutes of the meeting, not a workbook")
    plan = FaultPlan(max_copies=2, seed=5, crash=("load.after_job", "transform.after_claim"))
    summary = run_on_emulators(  # with the month's report, which the dbt job writes after its build
        Settings.from_env(home, environ={"RETAIL_PIPELINE_REPORTS": "gs://reports-truth/reports/"}),
        [(small_workbook, "small.xlsx"), (not_a_workbook, "notes.xlsx")],
        emulators=emulators,
        suffix="-truth",
        faults=plan,
        timeout=600,
    )
    audit = [json.loads(line) for line in (home / "strict" / "audit.jsonl").read_text().splitlines()]
    return {"home": home, "summary": summary, "audit": audit}


def test_strict_chain_under_crashes_and_duplicates_equals_the_embedded_chain(strict_run, embedded_reference):
    summary = strict_run["summary"]
    assert summary["dead_letters"] == []
    assert summary["warehouse"] == embedded_reference["warehouse"]
    batch, rejected = sorted(summary["batches"], key=lambda b: b["source"].endswith("notes.xlsx"))
    assert batch["state"] == "transformed"
    # bad input: a clear error, a report beside it (the ingest account may write rejected/ only), nothing loaded
    assert (rejected["state"], rejected["error_code"]) == ("rejected", "not_a_workbook")
    assert any(
        e["permission"] == "storage.objects.create"
        and "/objects/rejected/notes.xlsx." in e["resource"]
        and e["account"].startswith("retail-fn-ingest@")
        for e in strict_run["audit"]
    )
    # both crash points fired once and were retried by the platform
    faults = sorted(p.name for p in (strict_run["home"] / "faults").iterdir())
    assert len(faults) >= 2
    assert summary["deliveries"]["load"] > batch["partitions"] + 1  # duplicates and the crash's retry


def test_the_dbt_job_ran_as_its_own_process_and_recorded_its_outcome(strict_run, embedded_reference):
    summary = strict_run["summary"]
    dbt = summary["dbt"]
    assert dbt["status"] == "success" and dbt["tests_failed"] == 0
    # status shows what the job itself reported: the JSON line its process printed when it ended
    short = (dbt["execution"] or "").rsplit("/", 1)[-1]
    log = (strict_run["home"] / "strict" / "executions" / f"{short}.log").read_text()
    [line] = [json.loads(x) for x in log.splitlines() if x.startswith("{") and '"stage": "transform"' in x]
    assert (line["status"], line["tests_passed"], line["tests_failed"]) == ("success", dbt["tests_passed"], 0)
    assert dbt["tests_passed"] > 0 and line["models_built"] == dbt["models_built"] > 0
    assert re.fullmatch(
        r"projects/retail-local/locations/europe-west1/jobs/retail-dbt/executions/retail-dbt-\w+",
        dbt["execution"] or "",
    ), dbt
    dbt_calls = [e for e in strict_run["audit"] if e["account"].startswith("retail-dbt-job@")]
    assert any(
        e["permission"] == "bigquery.tables.updateData" and e["resource"].endswith("/transform_runs") for e in dbt_calls
    ), "the job wrote its outcome as the dbt job's account"
    run_calls = [e for e in strict_run["audit"] if e["service"] == "run"]
    assert {(e["account"].split("@")[0], e["permission"]) for e in run_calls} >= {
        ("retail-fn-transform", "run.jobs.run"),
        ("retail-fn-transform", "run.jobs.runWithOverrides"),
    }


def test_nothing_was_refused_and_no_function_creates_datasets_or_tables(strict_run):
    audit = strict_run["audit"]
    assert audit and [e for e in audit if not e["allowed"]] == []
    accounts = {e["account"].split("@")[0] for e in audit}
    assert {"retail-fn-ingest", "retail-fn-load", "retail-fn-transform", "retail-dbt-job"} <= accounts
    creators = {
        (e["account"].split("@")[0], e["permission"])
        for e in audit
        if e["permission"] in ("bigquery.datasets.create", "storage.buckets.create")
    }
    assert all(account == "terraform" for account, _ in creators), creators  # only the deployer provisions
    # raw and pipeline tables are Terraform's: the functions never create them (staging tables aside)
    made = {
        e["resource"]
        for e in audit
        if e["permission"] == "bigquery.tables.create" and not e["account"].startswith("terraform@")
    }
    assert all("/tables/_stage_" in r or "/datasets/retail_truth_pipeline" in r or "_analytics" in r for r in made), (
        made
    )


def _policy(home: Path):
    from retail_pipeline.config import Settings
    from retail_pipeline.strict.policy import Policy
    from retail_pipeline.strict.stack import TERRAFORM, StrictLayer

    settings = Settings.from_env(home, environ=json.loads((home / "chain.json").read_text())["env"])
    return Policy.from_terraform(TERRAFORM, StrictLayer("", "", home).resource_map(settings))


def _used(audit: list[dict]) -> list[tuple[str, str, str]]:
    """(account, permission, resource) of every call an IAM grant allowed (not the deployer's, and not
    a job's creator reading its own job, which BigQuery allows without a role)."""
    return sorted(
        {
            (e["account"], e["permission"], e["resource"])
            for e in audit
            if e["permission"] and e["binding"] and not e["account"].startswith("terraform@")
        }
    )


def test_every_grant_is_needed_and_every_need_is_granted(strict_run):
    from retail_pipeline.strict.policy import Policy

    policy = _policy(strict_run["home"])
    used = _used(strict_run["audit"])
    assert used
    refused = [call for call in used if not policy.check(*call).allowed]
    assert refused == []  # every need is met by the Terraform grants
    unexercised = []
    for binding in policy.bindings:
        without = Policy([b for b in policy.bindings if b != binding], policy.resources)
        broken = [call for call in used if not without.check(*call).allowed]
        if not broken:
            unexercised.append(binding)
    # each grant the chain did not need is one the platform uses: listed, with the reason, above
    unexplained = [
        f"{b.address} ({b.role} for {b.principal})"
        for b in unexercised
        if b.role.removeprefix("roles/") not in PLATFORM_GRANTS
        and f"{b.role.removeprefix('roles/')}@{b.principal}" not in PLATFORM_GRANTS
        and b.principal not in ("sweep",)
        and not b.resource.startswith("cryptoKey:")
    ]
    assert unexplained == [], "grants no step of the chain needs: " + "; ".join(unexplained)


def test_deploy_doc_lists_every_permission_the_chain_used(strict_run):
    """docs/deploy.md's role table, checked against what the strict chain observed: every permission a
    component used appears in the calls column of one of its rows."""
    policy = _policy(strict_run["home"])
    table = [line for line in (REPO / "docs" / "deploy.md").read_text().splitlines() if line.startswith("| ")]
    by_account: dict[str, str] = defaultdict(str)
    for row in table:
        cells = [c.strip() for c in row.strip("|").split("|")]
        if len(cells) == 4:
            by_account[cells[1].strip("`").replace("PREFIX", "retail")] += " " + cells[3]
    missing = []
    for account, permission, _resource in _used(strict_run["audit"]):
        calls = by_account.get(account.split("@")[0], "")
        _service, _, verb = permission.rpartition(".")
        if permission not in calls and f".{verb}" not in calls:
            missing.append(f"{account.split('@')[0]}: {permission}")
    assert not missing, "docs/deploy.md misses: " + ", ".join(sorted(set(missing)))
    assert policy  # the table's accounts are the policy's


def test_a_refusal_names_the_account_the_permission_and_the_resource(strict_run, emulators):
    from google.api_core.exceptions import Forbidden

    from retail_pipeline.adapters import open_store
    from retail_pipeline.config import Settings
    from retail_pipeline.strict.stack import StrictLayer

    home = strict_run["home"]
    recorded = Settings.from_env(home, environ=json.loads((home / "chain.json").read_text())["env"])
    layer = StrictLayer(emulators.gcs_url, emulators.bq_url, home / "strict-again")
    settings = layer.start(recorded)
    try:
        transform = settings.with_changes(identity=layer.identities()["transform"])
        landing = open_store(transform.landing, transform)
        with pytest.raises(Forbidden) as refused:
            landing.put("book.xlsx", b"not the transform's to write")
        message = str(refused.value)
        assert "retail-fn-transform@retail-local.iam.gserviceaccount.com" in message
        assert "storage.objects.create" in message and "landing-truth" in message
    finally:
        layer.stop()


def test_an_unknown_crash_point_is_an_error_that_lists_the_known_ones(tmp_path):
    proc = run_cli(tmp_path / "home", "run", "--faults", "crash=load.after_jobs", check=False)
    assert proc.returncode == 2
    assert "load.after_jobs" in proc.stderr and "load.after_job" in proc.stderr
    assert "transform.after_claim" in proc.stderr
    assert not (tmp_path / "home" / "warehouse.duckdb").exists()  # nothing ran


def test_a_failing_dbt_test_in_the_job_ends_as_transform_failed(strict_run, emulators):
    """The job runs for real and records a failure: a data test fails (the production freshness limit,
    set far below the batch's age in the execution's env overrides) and status says transform_failed."""
    from google.cloud import run_v2

    from retail_pipeline.adapters.google_clients import jobs_client
    from retail_pipeline.cloudrun import CloudRunJobTransformer, _execution_name
    from retail_pipeline.config import Settings
    from retail_pipeline.context import Context
    from retail_pipeline.status import collect
    from retail_pipeline.strict.run_admin import RunAdmin
    from retail_pipeline.strict.stack import DBT_JOB, REGION, StrictLayer

    home = strict_run["home"]
    [batch] = [b for b in strict_run["summary"]["batches"] if b["state"] == "transformed"]
    recorded = Settings.from_env(home, environ=json.loads((home / "chain.json").read_text())["env"])
    layer = StrictLayer(emulators.gcs_url, emulators.bq_url, home / "strict-failing")
    settings = layer.start(recorded)
    try:
        ctx = Context(settings.with_changes(identity=layer.admin))
        assert ctx.warehouse.claim_transform(batch["batch_id"], "failing-check")
        transform = settings.with_changes(identity=layer.identities()["transform"])
        runner = CloudRunJobTransformer(settings.warehouse_url.project, REGION, DBT_JOB, client=jobs_client(transform))
        partitions = ctx.warehouse.batch_progress(batch["batch_id"]).partitions
        request = runner.build_request([batch["batch_id"]], partitions, "failing-check")
        request.overrides.container_overrides[0].env.append(
            run_v2.EnvVar(name="RETAIL_PIPELINE_MAX_DATA_AGE_HOURS", value="0.001")
        )
        execution = _execution_name(runner.client.run_job(request=request, timeout=60))
        [run_admin] = [s for s in layer.servers if isinstance(s, RunAdmin)]
        finished = run_admin.wait(str(execution), timeout=900)
        assert finished.exit_code == 1  # dbt ran, a test failed: Cloud Run marks the execution failed
        report = collect(ctx)
        [state] = [b["state"] for b in report["batches"] if b["batch_id"] == batch["batch_id"]]
        assert state == "transform_failed"
        assert report["dbt"]["status"] == "failed" and report["dbt"]["tests_failed"] >= 1
        assert "assert_data_freshness" in (report["dbt"]["error"] or "")
    finally:
        layer.stop()


# ---------------------------------------------------------------- the month's report (the dbt job's)

REPORTS_GRANT = "google_storage_bucket_iam_member.dbt_writes_reports"


def _emulator_clients(emulators):
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery, storage

    anonymous = AnonymousCredentials()
    gcs = storage.Client(
        project=emulators.project, credentials=anonymous, client_options=ClientOptions(api_endpoint=emulators.gcs_url)
    )
    bq = bigquery.Client(
        project=emulators.project, credentials=anonymous, client_options=ClientOptions(api_endpoint=emulators.bq_url)
    )
    return gcs, bq


def test_the_dbt_job_wrote_the_months_report_as_its_own_account(strict_run, emulators):
    """After its build the job wrote the report of the latest month the batch touched under reports/ of
    the chain's reports bucket, as the dbt job's service account, nothing refused; the workbook opens
    and its summary equals the marts read directly from the BigQuery emulator."""
    import io

    import openpyxl
    from google.cloud import bigquery

    from report_checks import assert_summary_equals_marts

    gcs, bq = _emulator_clients(emulators)
    config = bigquery.QueryJobConfig(default_dataset=f"{emulators.project}.retail_truth_analytics")

    def sql(statement: str) -> list[tuple]:
        return [tuple(row.values()) for row in bq.query(statement, job_config=config).result(timeout=120)]

    [(latest,)] = sql("select max(invoice_month) from mart_revenue_monthly")
    month = latest.strftime("%Y-%m")
    names = [blob.name for blob in gcs.list_blobs("reports-truth")]
    assert names == [f"reports/online-retail-{month}.xlsx"]
    book = openpyxl.load_workbook(io.BytesIO(gcs.bucket("reports-truth").blob(names[0]).download_as_bytes()))
    try:
        assert_summary_equals_marts(book, month, sql)
    finally:
        book.close()
    writes = [e for e in strict_run["audit"] if "/buckets/reports-truth/objects/" in (e["resource"] or "")]
    assert [(e["account"], e["permission"], e["allowed"], e["binding"]) for e in writes] == [
        ("retail-dbt-job@retail-local.iam.gserviceaccount.com", "storage.objects.create", True, REPORTS_GRANT)
    ]
    assert writes[0]["resource"].endswith(f"/objects/reports/online-retail-{month}.xlsx")
    # the job's own log: the build's line, then the report's
    short = (strict_run["summary"]["dbt"]["execution"] or "").rsplit("/", 1)[-1]
    log = (strict_run["home"] / "strict" / "executions" / f"{short}.log").read_text()
    stages = [(x["stage"], x["status"]) for x in map(json.loads, (y for y in log.splitlines() if y.startswith("{")))]
    assert stages[-2:] == [("transform", "success"), ("report", "success")]


def test_without_the_reports_grant_the_write_is_refused_and_the_build_stands(
    strict_run, emulators, monkeypatch, capsys
):
    """The policy minus the job's reports grant: the audited report write would be refused. Run the job's
    report step through a gateway enforcing that policy: 403, logged as stage=report/failed, exit code 4,
    and the run stays a success, noted 'report not written'."""
    import dataclasses
    import importlib.util

    from retail_pipeline.config import Settings
    from retail_pipeline.context import Context
    from retail_pipeline.status import collect
    from retail_pipeline.strict.gateway import Gateway
    from retail_pipeline.strict.policy import Policy
    from retail_pipeline.strict.stack import StrictLayer

    home = strict_run["home"]
    policy = _policy(home)
    without = Policy([b for b in policy.bindings if b.address != REPORTS_GRANT], policy.resources)
    assert len(without.bindings) == len(policy.bindings) - 1
    writes = [c for c in _used(strict_run["audit"]) if "/buckets/reports-truth/objects/" in c[2]]
    assert writes and all(policy.check(*c).allowed and not without.check(*c).allowed for c in writes)

    recorded = Settings.from_env(home, environ=json.loads((home / "chain.json").read_text())["env"])
    layer = StrictLayer(emulators.gcs_url, emulators.bq_url, home / "strict-no-reports-grant")
    settings = layer.start(recorded)
    refusing = Gateway(emulators.gcs_url, "gcs", without, layer.root / "refusing-audit.jsonl")
    refusing.start()
    try:
        ctx = Context(settings.with_changes(identity=layer.admin))
        [batch] = [b for b in strict_run["summary"]["batches"] if b["state"] == "transformed"]
        before = collect(ctx)
        assert ctx.warehouse.claim_transform(batch["batch_id"], "report-refused")
        job = layer.dbt_job(
            settings.with_changes(endpoints=dataclasses.replace(settings.endpoints, storage=refusing.url))
        )
        overrides = {"RETAIL_PIPELINE_BATCH_IDS": batch["batch_id"], "RETAIL_PIPELINE_CLAIM_KEY": "report-refused"}
        for key, value in {**job.env, **overrides}.items():
            monkeypatch.setenv(key, value)
        spec = importlib.util.spec_from_file_location("dbt_job_entrypoint", REPO / "dbt" / "entrypoint.py")
        assert spec and spec.loader
        entrypoint = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(entrypoint)
        partitions = ctx.warehouse.batch_progress(batch["batch_id"]).partitions
        built = {"state": "success", "tests_passed": 11, "tests_failed": 0, "models_built": 5, "seconds": 2.0}
        record = {"batch_id": batch["batch_id"], "partitions": partitions}
        code = entrypoint.write_report(record, {**built, "error": None}, "emulator")
        lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
        [line] = [x for x in lines if x.get("stage") == "report"]
        assert code == entrypoint.REPORT_FAILED == 4
        assert (line["severity"], line["status"]) == ("ERROR", "failed")
        message = line["message"]
        assert f"the report of {max(partitions)} was not written to gs://reports-truth/reports/" in message
        assert "403" in message and "storage.objects.create" in message
        assert "retail-dbt-job@retail-local.iam.gserviceaccount.com" in message
        after = collect(ctx)
        [noted] = [b for b in after["batches"] if b["batch_id"] == batch["batch_id"]]
        assert noted["state"] == "transformed" and noted["error"] == "report not written: " + message
        assert after["warehouse"] == before["warehouse"]
        audit = [json.loads(x) for x in (layer.root / "refusing-audit.jsonl").read_text().splitlines()]
        refused = [e for e in audit if not e["allowed"]]
        assert [(e["account"].split("@")[0], e["permission"]) for e in refused] == [
            ("retail-dbt-job", "storage.objects.create")
        ]
        assert "/buckets/reports-truth/objects/reports/" in refused[0]["resource"]
    finally:
        refusing.stop()
        layer.stop()
