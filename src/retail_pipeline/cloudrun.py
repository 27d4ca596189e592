"""The transform in GCP: one Cloud Run job execution per completed batch.

The job runs the dbt project's container (``dbt/Dockerfile``); its entrypoint runs
``dbt build --target prod`` with the batch's vars. :class:`CloudRunJobTransformer` starts one
execution through the Cloud Run Admin API (``google-cloud-run``'s ``JobsClient.run_job``), with
container overrides that carry the batch:

- ``args``: ``--vars '{"batch_id": ..., "partitions": ["2011-01", ...]}'`` (the entrypoint passes
  them to dbt);
- ``env``: ``RETAIL_PIPELINE_BATCH_ID`` (for the job's logs).

It does not wait for the execution to finish (a dbt build can outlast a function's timeout): the
run is recorded as ``started`` with the execution's name, and the job records its own outcome
(state, models, tests, error) in the same ``transform_runs`` rows when it ends. One execution per batch is the caller's claim (``Warehouse.claim_transform``),
taken before :meth:`run` is called.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .ports import TransformResult

log = logging.getLogger(__name__)

PARTITION_RE = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")
BATCH_ENV = "RETAIL_PIPELINE_BATCH_ID"  #: the batch that triggered the run (for the job's logs)
BATCHES_ENV = "RETAIL_PIPELINE_BATCH_IDS"  #: every batch the run is for: the job records its outcome on them
CLAIM_ENV = "RETAIL_PIPELINE_CLAIM_KEY"


class JobBusy(RuntimeError):
    """An execution of the dbt job is still running: a transient error, retried by the platform."""


def running_execution(executions_client: Any, job_name: str, timeout: float = 60.0) -> str | None:
    """The name of an execution of the job that has not completed yet, or None."""
    for execution in executions_client.list_executions(parent=job_name, timeout=timeout):
        if not execution.completion_time:
            return str(execution.name)
    return None


class JobsClientLike(Protocol):
    """The part of ``google.cloud.run_v2.JobsClient`` the transformer uses."""

    def run_job(self, request: Any = None, *, timeout: float = ...) -> Any: ...


def dbt_vars(batch_id: str, partitions: list[str]) -> str:
    """The ``--vars`` JSON dbt gets for one batch (the same shape the in-process transformer passes)."""
    bad = [p for p in partitions if not PARTITION_RE.match(p)]
    if bad:
        raise ValueError(f"partitions must be invoice months as YYYY-MM, got {bad}")
    return json.dumps({"batch_id": batch_id, "partitions": sorted(set(partitions))}, separators=(",", ":"))


@dataclass
class CloudRunJobTransformer:
    """Starts one execution of a Cloud Run job per batch; the batch travels in the overrides."""

    project: str
    region: str
    job: str
    client: JobsClientLike | None = None  #: injectable; else made by client_factory on first use
    client_factory: Callable[[], JobsClientLike] | None = None  #: makes the Admin API client (from the settings)
    #: the name of an execution of the job still running, or None; one dbt build at a time: two
    #: concurrent builds of the same models see each other half-done (a relationships test fails)
    running_execution: Callable[[], str | None] | None = None
    request_timeout: float = 60.0  #: seconds for the run_job call itself
    busy_wait_seconds: float = 0.0  #: how long ensure_idle waits for a running execution to end
    poll_seconds: float = 2.0  #: how often it asks meanwhile
    task_timeout_seconds: int = 3600  #: the execution's task timeout (the job's own default otherwise)
    _made_client: Any = field(default=None, init=False, repr=False)

    @property
    def job_name(self) -> str:
        """Full resource name: ``projects/P/locations/R/jobs/J``."""
        return f"projects/{self.project}/locations/{self.region}/jobs/{self.job}"

    def _client(self) -> JobsClientLike:
        if self.client is not None:
            return self.client
        if self._made_client is None:
            if self.client_factory is None:
                raise RuntimeError("CloudRunJobTransformer needs a client or a client_factory")
            self._made_client = self.client_factory()
        return self._made_client

    def build_request(self, batch_ids: list[str], partitions: list[str], claim_key: str = "initial") -> Any:
        """The RunJobRequest for the batches (separate so it can be inspected). The env tells the job
        which transform_runs rows are its own, to record its outcome in (dbt/entrypoint.py)."""
        from google.cloud import run_v2
        from google.protobuf import duration_pb2

        override = run_v2.RunJobRequest.Overrides.ContainerOverride(
            args=["--vars", dbt_vars(batch_ids[0], partitions)],
            env=[
                run_v2.EnvVar(name=BATCH_ENV, value=batch_ids[0]),
                run_v2.EnvVar(name=BATCHES_ENV, value=",".join(batch_ids)),
                run_v2.EnvVar(name=CLAIM_ENV, value=claim_key),
            ],
        )
        return run_v2.RunJobRequest(
            name=self.job_name,
            overrides=run_v2.RunJobRequest.Overrides(
                container_overrides=[override],
                task_count=1,
                timeout=duration_pb2.Duration(seconds=self.task_timeout_seconds),
            ),
        )

    def ensure_idle(self) -> None:
        """Returns once no execution runs, waiting up to ``busy_wait_seconds`` for a running one to
        end; JobBusy after that. Asked before the caller claims batches, so a message that comes
        during a build claims nothing. It waits rather than answering at once: a message sent back is
        redelivered with a backoff that grows with every failure, and Pub/Sub (its emulator too) slows
        its push to an endpoint that keeps failing, so a batch completed during a build could wait
        minutes after the build ended."""
        self._wait_idle(self.busy_wait_seconds)

    def _wait_idle(self, seconds: float) -> None:
        if self.running_execution is None:
            return
        deadline = time.monotonic() + seconds
        while running := self.running_execution():
            left = deadline - time.monotonic()
            if left <= 0:  # transient: the platform redelivers the message, and the claims are released
                raise JobBusy(f"{self.job_name} is still running {running}; this run starts when it is done")
            time.sleep(min(self.poll_seconds, left))

    def run(self, batch_ids: list[str], partitions: list[str], claim_key: str = "initial") -> TransformResult:
        """Start one job execution for the batches; returns once the API accepted it (state ``started``)."""
        batch_id = batch_ids[0]
        self._wait_idle(0)  # again, without waiting (claims are held): another message may have started one
        request = self.build_request(batch_ids, partitions, claim_key)
        started = time.monotonic()
        operation = self._client().run_job(request=request, timeout=self.request_timeout)
        execution = _execution_name(operation)
        seconds = round(time.monotonic() - started, 3)
        log.info(
            "started Cloud Run job %s for batch %s: %s",
            self.job_name,
            batch_id,
            execution or "execution pending",
            extra={"batch_id": batch_id, "job": self.job_name, "execution": execution},
        )
        return TransformResult("started", 0, 0, 0, seconds, execution=execution)


def _execution_name(operation: Any) -> str | None:
    """The execution's resource name from run_job's long-running operation, when it says."""
    try:
        metadata = operation.metadata
    except (AttributeError, ValueError, TypeError):  # no metadata yet, or a fake without it
        return None
    return getattr(metadata, "name", None) or None
