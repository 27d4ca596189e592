"""The transform as a Cloud Run job: one execution per completed batch, the batch in the overrides.

There is no emulator for the Cloud Run Admin API, so the boundary is faked at the wire: a local
gRPC server speaks the `google.cloud.run.v2.Jobs/RunJob` method and records what the real
`run_v2.JobsClient` sends. Deliveries go through the transform function's functions-framework app.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent import futures
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from google.cloud import run_v2
from google.longrunning import operations_pb2
from google.protobuf import any_pb2

from loaded_batch import MONTHS, ingest_and_load
from retail_pipeline.cloudrun import CloudRunJobTransformer

URL = "cloudrun://retail-test-1/europe-west1/retail-dbt"
JOB = "projects/retail-test-1/locations/europe-west1/jobs/retail-dbt"


class FakeRunAdminApi:
    """A gRPC server answering Jobs.RunJob like the Admin API (an operation whose metadata is the execution)."""

    def __init__(self) -> None:
        self.requests: list[run_v2.RunJobRequest] = []
        self._lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handler = grpc.method_handlers_generic_handler(
            "google.cloud.run.v2.Jobs",
            {
                "RunJob": grpc.unary_unary_rpc_method_handler(
                    self._run_job,
                    request_deserializer=run_v2.RunJobRequest.deserialize,
                    response_serializer=operations_pb2.Operation.SerializeToString,
                ),
            },
        )
        self.server.add_generic_rpc_handlers((handler,))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def _run_job(self, request: run_v2.RunJobRequest, context) -> operations_pb2.Operation:
        with self._lock:
            self.requests.append(request)
            number = len(self.requests)
        metadata = any_pb2.Any()
        metadata.Pack(run_v2.Execution.pb(run_v2.Execution(name=f"{request.name}/executions/retail-dbt-{number:04d}")))
        return operations_pb2.Operation(name=f"{request.name}/operations/op-{number}", done=False, metadata=metadata)

    def client(self) -> run_v2.JobsClient:
        """The real client library, over an insecure channel to this server."""
        from google.cloud.run_v2.services.jobs.transports import JobsGrpcTransport

        channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        return run_v2.JobsClient(transport=JobsGrpcTransport(channel=channel))

    def stop(self) -> None:
        self.server.stop(grace=None)


@pytest.fixture
def admin_api():
    api = FakeRunAdminApi()
    yield api
    api.stop()


def test_transform_url_parses_and_rejects(settings):
    from retail_pipeline.adapters import open_transformer

    t = open_transformer(settings.with_changes(transform=URL))
    assert isinstance(t, CloudRunJobTransformer)
    assert (t.project, t.region, t.job, t.job_name) == ("retail-test-1", "europe-west1", "retail-dbt", JOB)
    for bad in (
        "cloudrun://proj",
        "cloudrun://retail-test-1/europe-west1/",
        "cloudrun://Bad_Project/eu/job",
        "gs://retail-test-1/europe-west1/job",
    ):
        with pytest.raises(ValueError, match="cloudrun://PROJECT/REGION/JOB"):
            settings.with_changes(transform=bad)


def transformer(admin_api) -> CloudRunJobTransformer:
    return CloudRunJobTransformer("retail-test-1", "europe-west1", "retail-dbt", client=admin_api.client())


def test_run_sends_one_request_with_the_batch_in_the_overrides(admin_api):
    t = transformer(admin_api)
    result = t.run(["abc123"], ["2011-02", "2010-12"])
    assert result.status == "started" and result.tests_failed == 0
    [request] = admin_api.requests
    assert request.name == JOB
    [override] = request.overrides.container_overrides
    assert override.args[0] == "--vars"
    assert json.loads(override.args[1]) == {"batch_id": "abc123", "partitions": ["2010-12", "2011-02"]}
    assert {e.name: e.value for e in override.env} == {
        "RETAIL_PIPELINE_BATCH_ID": "abc123",
        "RETAIL_PIPELINE_BATCH_IDS": "abc123",
        "RETAIL_PIPELINE_CLAIM_KEY": "initial",
    }
    assert request.overrides.task_count == 1
    with pytest.raises(ValueError, match="YYYY-MM"):
        t.run(["abc123"], ["2011-13"])
    assert len(admin_api.requests) == 1  # a bad batch never reaches the API


def _transform_app():
    import functions_framework

    from retail_pipeline.runtime import FUNCTIONS_DIR

    return functions_framework.create_app("transform", str(FUNCTIONS_DIR / "transform" / "main.py"), "cloudevent")


def _batch_complete_event(batch_id: str, message_id: str, replay: str | None = None):
    from retail_pipeline.events import binary, pubsub_published
    from retail_pipeline.ports import Message

    attributes = {"batch_id": batch_id, "partition": "2011-01", "kind": "sales", "rows": "3"}
    if replay:
        attributes["replay"] = replay
    message = Message(message_id, json.dumps({"batch_id": batch_id}).encode(), attributes, datetime.now(UTC))
    return binary(
        pubsub_published(
            message, "projects/retail-test-1/topics/partition-loaded", "projects/retail-test-1/subscriptions/transform"
        )
    )


def test_two_concurrent_deliveries_start_exactly_one_execution(settings, admin_api, tmp_path: Path):
    from retail_pipeline import context

    ctx = context.Context(settings)
    ctx.transformer = transformer(admin_api)
    context.use(ctx)
    try:
        batch_id = ingest_and_load(ctx, tmp_path)
        app = _transform_app()
        errors: list[str] = []
        from flask import got_request_exception

        got_request_exception.connect(lambda sender, exception, **extra: errors.append(str(exception)), app, weak=False)
        clients = [app.test_client(), app.test_client()]
        barrier = threading.Barrier(2, timeout=30)
        statuses: list[int] = []

        def deliver(i: int) -> None:
            headers, body = _batch_complete_event(batch_id, f"m{i}")
            barrier.wait()
            statuses.append(clients[i].post("/", headers=headers, data=body).status_code)

        threads = [threading.Thread(target=deliver, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads)
        # the delivery that loses the race on the claim either sees it taken, or (both inserting at once)
        # fails on the claim's primary key: HTTP 500, which Pub/Sub redelivers; redeliver those
        assert sorted(statuses)[0] == 200 and len(errors) == sum(s >= 300 for s in statuses)
        assert all("duplicate key" in e.lower() and batch_id in e for e in errors), errors
        for i, status in enumerate(list(statuses)):
            if status >= 300:
                headers, body = _batch_complete_event(batch_id, f"m{i}")
                assert clients[0].post("/", headers=headers, data=body).status_code == 200
        assert len(admin_api.requests) == 1
        [request] = admin_api.requests
        assert request.name == JOB
        [override] = request.overrides.container_overrides
        assert override.args[0] == "--vars"
        assert json.loads(override.args[1]) == {"batch_id": batch_id, "partitions": MONTHS}
        assert {e.name: e.value for e in override.env} == {
            "RETAIL_PIPELINE_BATCH_ID": batch_id,
            "RETAIL_PIPELINE_BATCH_IDS": batch_id,
            "RETAIL_PIPELINE_CLAIM_KEY": "initial",
        }
        runs = ctx.warehouse.runs()
        assert [(r["batch_id"], r["claim_key"], r["state"]) for r in runs] == [(batch_id, "initial", "started")]

        # a later redelivery of the same message changes nothing; a deliberate replay runs the job again
        headers, body = _batch_complete_event(batch_id, "m0")
        assert clients[0].post("/", headers=headers, data=body).status_code == 200
        assert len(admin_api.requests) == 1
        headers, body = _batch_complete_event(batch_id, "m9", replay="replay-1")
        assert clients[0].post("/", headers=headers, data=body).status_code == 200
        assert len(admin_api.requests) == 2
        assert json.loads(admin_api.requests[1].overrides.container_overrides[0].args[1])["batch_id"] == batch_id
    finally:
        context.use(None)


def test_a_message_during_a_running_execution_waits_for_it_then_starts_one(settings, admin_api, tmp_path: Path):
    """A complete batch's message that comes while an execution runs is held until the execution ends
    (then it starts the next one), and sent back with nothing claimed only when the wait runs out."""
    from retail_pipeline import context

    ctx = context.Context(settings)
    running = {"name": f"{JOB}/executions/retail-dbt-0000"}
    asked: list[float] = []

    def running_execution() -> str | None:
        asked.append(time.monotonic())
        return running["name"]

    ctx.transformer = CloudRunJobTransformer(
        "retail-test-1",
        "europe-west1",
        "retail-dbt",
        client=admin_api.client(),
        running_execution=running_execution,
        busy_wait_seconds=0.5,
        poll_seconds=0.1,
    )
    context.use(ctx)
    try:
        batch_id = ingest_and_load(ctx, tmp_path)
        client = _transform_app().test_client()
        # the execution outlasts the wait: sent back (HTTP 500), nothing claimed, no execution started
        started = time.monotonic()
        headers, body = _batch_complete_event(batch_id, "m1")
        assert client.post("/", headers=headers, data=body).status_code == 500
        assert time.monotonic() - started >= 0.5 and len(asked) >= 4
        assert admin_api.requests == [] and ctx.warehouse.runs() == []

        # the execution ends during the wait: the same message then starts exactly one execution
        threading.Timer(0.25, lambda: running.update(name=None)).start()
        asked.clear()
        headers, body = _batch_complete_event(batch_id, "m1")
        assert client.post("/", headers=headers, data=body).status_code == 200
        assert len(asked) >= 2 and asked[-1] - asked[0] >= 0.2
        assert len(admin_api.requests) == 1
        assert [(r["batch_id"], r["state"]) for r in ctx.warehouse.runs()] == [(batch_id, "started")]
    finally:
        context.use(None)
