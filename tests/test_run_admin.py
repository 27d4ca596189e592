"""The local Cloud Run Admin API: the real run_v2 clients (REST) start the job as a process, with the
execution's overrides, under the IAM grants of Terraform or of an in-test HCL snippet."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import requests
from google.api_core import exceptions as gx
from google.cloud import run_v2

from retail_pipeline.cloudrun import BATCH_ENV, CloudRunJobTransformer, dbt_vars
from retail_pipeline.identity import ServiceAccountIdentity
from retail_pipeline.strict.policy import Policy
from retail_pipeline.strict.resources import ResourceMap
from retail_pipeline.strict.run_admin import JobDefinition, RunAdmin
from retail_pipeline.strict.run_executions import EXIT_KEY, STATE_KEY

REPO = Path(__file__).resolve().parents[1]
PROJECT, REGION, JOB = "retail-test-1", "europe-west1", "retail-dbt"
JOB_NAME = f"projects/{PROJECT}/locations/{REGION}/jobs/{JOB}"

# The "container": records its argv and environment, waits for the file after --until if asked,
# then exits with the code its args ask for.
SCRIPT = """
import json, os, sys, time
with open(os.environ["OUT"], "w") as out:
    json.dump({"argv": sys.argv[1:], "env": dict(os.environ)}, out)
while "--until" in sys.argv and not os.path.exists(sys.argv[sys.argv.index("--until") + 1]):
    time.sleep(0.05)
sys.exit(int(sys.argv[sys.argv.index("--exit") + 1]) if "--exit" in sys.argv else 0)
"""

SNIPPET = """
resource "google_project_iam_custom_role" "execution_reader" {
  role_id     = "executionReader"
  title       = "Reads Cloud Run operations and executions"
  permissions = ["run.operations.get", "run.executions.get"]
}
resource "google_cloud_run_v2_job_iam_member" "transform_runs_dbt" {
  name     = google_cloud_run_v2_job.dbt.name
  location = var.region
  role     = "roles/run.jobsExecutorWithOverrides"
  member   = "serviceAccount:${google_service_account.function["transform"].email}"
}
resource "google_project_iam_member" "transform_reads_executions" {
  project = var.project_id
  role    = google_project_iam_custom_role.execution_reader.id
  member  = "serviceAccount:${google_service_account.function["transform"].email}"
}
resource "google_cloud_run_v2_job_iam_member" "load_runs_dbt_as_is" {
  name     = google_cloud_run_v2_job.dbt.name
  location = var.region
  role     = "roles/run.jobsExecutor"
  member   = "serviceAccount:${google_service_account.function["load"].email}"
}
"""


@pytest.fixture(scope="module")
def rmap() -> ResourceMap:
    return ResourceMap.for_chain(PROJECT, "t-landing", "t-lake", "t", "partition-loaded", JOB, region=REGION)


def _admin(policy: Policy, tmp_path: Path) -> RunAdmin:
    out = tmp_path / "out.json"
    job = JobDefinition(
        command=[sys.executable, "-c", SCRIPT],
        args=["--default-arg"],
        env={"OUT": str(out), "JOB_SETTING": "from-the-job", BATCH_ENV: "unset"},
    )
    return RunAdmin(policy, {JOB: job}, tmp_path / "audit.jsonl", tmp_path / "executions", region=REGION)


@pytest.fixture
def snippet_admin(rmap, tmp_path):
    with _admin(Policy.from_hcl(SNIPPET, rmap), tmp_path) as admin:
        yield admin


def _jobs(admin: RunAdmin, rmap: ResourceMap, who: str) -> run_v2.JobsClient:
    return run_v2.JobsClient(
        transport="rest",
        client_options={"api_endpoint": admin.url},
        credentials=ServiceAccountIdentity(rmap.email(who)),
    )


def _overridden(args: list[str], env: dict[str, str] | None = None) -> run_v2.RunJobRequest:
    override = run_v2.RunJobRequest.Overrides.ContainerOverride(
        args=args, env=[run_v2.EnvVar(name=k, value=v) for k, v in (env or {}).items()]
    )
    return run_v2.RunJobRequest(name=JOB_NAME, overrides=run_v2.RunJobRequest.Overrides(container_overrides=[override]))


def test_the_transformer_starts_the_job_with_its_overrides_and_the_outcome_is_reported(snippet_admin, rmap, tmp_path):
    transformer = CloudRunJobTransformer(PROJECT, REGION, JOB, client=_jobs(snippet_admin, rmap, "transform"))
    assert transformer.run(["batch-7"], ["2011-02", "2011-01"]).status == "started"
    (execution,) = snippet_admin.executions()
    assert execution.name.startswith(f"{JOB_NAME}/executions/{JOB}-")
    assert snippet_admin.wait(execution.name, timeout=60).state == "succeeded"
    seen = json.loads((tmp_path / "out.json").read_text())
    assert seen["argv"] == ["--vars", dbt_vars("batch-7", ["2011-01", "2011-02"])]  # override args replace the job's
    assert seen["env"][BATCH_ENV] == "batch-7" and seen["env"]["JOB_SETTING"] == "from-the-job"  # env merged
    assert seen["env"]["CLOUD_RUN_EXECUTION"] == execution.name.rsplit("/", 1)[1]
    operation = _jobs(snippet_admin, rmap, "transform").run_job(request=_overridden(["--exit", "0"]))
    done = operation.result(timeout=60)
    assert done.succeeded_count == 1
    assert done.annotations[STATE_KEY] == "succeeded" and done.annotations[EXIT_KEY] == "0"
    assert done.conditions[0].state == run_v2.Condition.State.CONDITION_SUCCEEDED


def test_a_failing_job_reports_failure_and_its_exit_code(snippet_admin, rmap):
    operation = _jobs(snippet_admin, rmap, "transform").run_job(request=_overridden(["--exit", "3"]))
    with pytest.raises(gx.GoogleAPICallError, match="exit code 3"):
        operation.result(timeout=60)
    executions = run_v2.ExecutionsClient(
        transport="rest",
        client_options={"api_endpoint": snippet_admin.url},
        credentials=ServiceAccountIdentity(rmap.email("transform")),
    )
    execution = executions.get_execution(name=operation.metadata.name)
    assert execution.failed_count == 1 and execution.succeeded_count == 0
    assert execution.conditions[0].state == run_v2.Condition.State.CONDITION_FAILED
    assert execution.annotations[STATE_KEY] == "failed" and execution.annotations[EXIT_KEY] == "3"
    assert snippet_admin.execution(operation.metadata.name).exit_code == 3


def test_overrides_need_run_with_overrides(snippet_admin, rmap):
    load = _jobs(snippet_admin, rmap, "load")
    load.run_job(name=JOB_NAME)  # roles/run.jobsExecutor: run as defined
    with pytest.raises(gx.Forbidden) as denied:
        load.run_job(request=_overridden(["--exit", "0"]))
    message = str(denied.value)
    assert rmap.email("load") in message and "'run.jobs.runWithOverrides'" in message and JOB_NAME in message
    with pytest.raises(gx.Forbidden, match="'run.jobs.run'"):
        _jobs(snippet_admin, rmap, "dbt").run_job(name=JOB_NAME)
    assert len(snippet_admin.executions()) == 1
    answer = requests.post(f"{snippet_admin.url}/v2/{JOB_NAME}:run", json={}, timeout=10)
    assert answer.status_code == 401


def test_terraform_lets_the_transform_start_the_dbt_job_with_overrides(rmap, tmp_path):
    with _admin(Policy.from_terraform(REPO / "terraform", rmap), tmp_path) as admin:
        transformer = CloudRunJobTransformer(PROJECT, REGION, JOB, client=_jobs(admin, rmap, "transform"))
        assert transformer.run(["batch-8"], ["2011-03"]).status == "started"
        (execution,) = admin.executions()
        assert admin.wait(execution.name, timeout=60).state == "succeeded"
    rows = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert {(r["permission"], r["allowed"]) for r in rows} == {
        ("run.jobs.run", True),
        ("run.jobs.runWithOverrides", True),
    }


def test_a_chain_looks_at_the_warehouse_only_now_and_then_while_a_job_runs(snippet_admin, rmap, tmp_path):
    """Chain.look_due: a running execution (whose end records what a wait waits for) holds the looks
    back to one every LOOK_WHILE_BUILDING seconds; without one, every look is due."""
    import time

    from retail_pipeline.chain import LOOK_WHILE_BUILDING, Chain
    from retail_pipeline.config import Settings
    from retail_pipeline.strict.stack import StrictLayer

    chain = Chain(Settings.from_env(tmp_path / "home", environ={}), strict=False)
    chain.strict = StrictLayer("http://unused", "http://unused", tmp_path / "strict", servers=[snippet_admin])
    now = time.monotonic()
    assert not snippet_admin.running() and chain.look_due(now)
    gate = tmp_path / "gate"
    operation = _jobs(snippet_admin, rmap, "transform").run_job(request=_overridden(["--until", str(gate)]))
    assert snippet_admin.running() and chain.strict.executing()
    assert not chain.look_due(time.monotonic())
    assert chain.look_due(time.monotonic() - LOOK_WHILE_BUILDING)
    gate.touch()
    assert operation.result(timeout=60).succeeded_count == 1
    assert not snippet_admin.running() and chain.look_due(time.monotonic())


def test_a_preloaded_job_starts_forked_and_reports_as_a_process_would(rmap, tmp_path):
    """JobDefinition.preload (the dbt job's): the execution is the script in an interpreter forked
    from the server that made the imports; its overrides, environment and outcome are as before."""
    from retail_pipeline.dbt_forkserver import ScriptProcess

    script = tmp_path / "container.py"
    script.write_text(SCRIPT)
    out = tmp_path / "out.json"
    job = JobDefinition(command=[sys.executable, str(script)], env={"OUT": str(out)}, preload="dbt-job")
    policy = Policy.from_hcl(SNIPPET, rmap)
    with RunAdmin(policy, {JOB: job}, tmp_path / "audit.jsonl", tmp_path / "executions", region=REGION) as admin:
        operation = _jobs(admin, rmap, "transform").run_job(request=_overridden(["--exit", "4"], {"EXTRA": "1"}))
        with pytest.raises(gx.GoogleAPICallError, match="exit code 4"):
            operation.result(timeout=120)
        (execution,) = admin.executions()
        assert isinstance(execution.process, ScriptProcess)
        assert execution.exit_code == 4 and execution.state == "failed"
    seen = json.loads(out.read_text())
    assert seen["argv"] == ["--exit", "4"] and seen["env"]["EXTRA"] == "1" and seen["env"]["OUT"] == str(out)
    assert seen["env"]["CLOUD_RUN_EXECUTION"] == execution.name.rsplit("/", 1)[1]
