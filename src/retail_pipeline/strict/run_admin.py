"""A local Cloud Run Admin API (v2, REST) for jobs: ``RunJob`` starts the job's container command
as a separate process, with the execution's overrides, as Cloud Run would.

``google.cloud.run_v2.JobsClient(transport="rest", client_options={"api_endpoint": url},
credentials=ServiceAccountIdentity(email)).run_job(request)`` works against it (http:// endpoints
are accepted by the REST transport). Served:

- ``POST /v2/projects/P/locations/R/jobs/J:run``: needs ``run.jobs.run`` on the job, and
  ``run.jobs.runWithOverrides`` when the request has overrides (container args/env, task count,
  timeout). Override args replace the container's args; override env entries are merged over the
  container's env by name; the process also gets Cloud Run's ``CLOUD_RUN_JOB``,
  ``CLOUD_RUN_EXECUTION``, ``CLOUD_RUN_TASK_INDEX``, ``CLOUD_RUN_TASK_ATTEMPT`` and
  ``CLOUD_RUN_TASK_COUNT``. Answers a long-running Operation whose metadata is the Execution
  (``projects/P/locations/R/jobs/J/executions/J-xxxxx``), ``done: false``.
- ``GET /v2/projects/P/locations/R/operations/O`` (``run.operations.get``): done once the process
  ended; ``response`` is the Execution, or ``error`` when it failed.
- ``GET .../jobs/J/executions/E`` (``run.executions.get``), ``GET .../jobs/J/executions``
  (``run.executions.list``), ``POST .../executions/E:cancel`` (``run.executions.cancel``).

An Execution's ``conditions`` say how it ended (``Completed``: CONDITION_SUCCEEDED, or
CONDITION_FAILED with reason NON_ZERO_EXIT_CODE), and its annotations carry the local state and
the process's exit code (:data:`.run_executions.STATE_KEY`, :data:`.run_executions.EXIT_KEY`).
One task per execution; no retries (``max_retries`` is not emulated). Decisions go to the same
JSONL audit log as the gateway's (service ``run``).
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..dbt_forkserver import fork_server
from .httpserve import AuditLog, LocalServer, Reply, Request, denied_message, error_reply, json_reply
from .policy import Policy
from .resources import run_job_name
from .run_executions import Execution, duration_seconds

_LOC = r"^/v2/projects/(?P<project>[^/]+)/locations/(?P<region>[^/]+)"
_RUN = re.compile(_LOC + r"/jobs/(?P<job>[^/:]+):run$")
_OPERATION = re.compile(_LOC + r"/operations/(?P<operation>[^/:]+)$")
_EXECUTIONS = re.compile(_LOC + r"/jobs/(?P<job>[^/:]+)/executions$")
_EXECUTION = re.compile(_LOC + r"/jobs/(?P<job>[^/:]+)/executions/(?P<execution>[^/:]+)(?P<cancel>:cancel)?$")
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")


@dataclass(frozen=True)
class JobDefinition:
    """What ``google_cloud_run_v2_job`` defines for the container: command (entrypoint), args, env."""

    command: list[str]
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    timeout_seconds: float = 3600.0  #: the template's task timeout (an override's timeout wins)
    #: a command ``[sys.executable, SCRIPT]`` starts in an interpreter forked from a server that has
    #: made these imports (:data:`~retail_pipeline.dbt_forkserver.PRELOADS`): the image's start
    #: without its imports; same script, argv, environment, folder and log
    preload: str | None = None


class RunAdmin:
    """The stand-in (see the module docstring). ``jobs`` maps job names (J) to their definitions."""

    def __init__(
        self,
        policy: Policy,
        jobs: Mapping[str, JobDefinition],
        audit_path: Path,
        work_dir: Path,
        *,
        region: str = "europe-west1",
        base_env: Mapping[str, str] | None = None,
        port: int = 0,
    ) -> None:
        self.policy = policy
        self.project = policy.resources.project
        self.region = region
        self.jobs = dict(jobs)
        self.work_dir = Path(work_dir)
        self.base_env = (
            dict(base_env) if base_env is not None else {k: v for k, v in os.environ.items() if k in _INHERITED}
        )
        self.audit = AuditLog(audit_path, "run")
        self.server = LocalServer("strict-run-admin", self._handle, self.audit, port=port)
        self._lock = threading.Lock()
        self._executions: dict[str, Execution] = {}
        self._operations: dict[str, str] = {}  #: operation name -> execution name

    # -- lifecycle --------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> str:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        return self.server.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving; executions still running are terminated."""
        self.server.stop()
        for execution in self.executions():
            if execution.process is not None and execution.process.poll() is None:
                execution.process.terminate()
                try:
                    execution.process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    execution.process.kill()

    def __enter__(self) -> RunAdmin:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def executions(self) -> list[Execution]:
        with self._lock:
            return list(self._executions.values())

    def execution(self, name: str) -> Execution:
        with self._lock:
            return self._executions[name]

    def running(self) -> bool:
        """Whether an execution's process is still running."""
        return any(e.process is not None and e.process.poll() is None for e in self.executions())

    def wait_all(self, timeout: float = 600.0) -> None:
        """Block until no execution is running (or TimeoutError): what a job does after it recorded
        its outcome (the month's report) still happens, as it does in Cloud Run."""
        deadline = time.monotonic() + timeout
        for execution in self.executions():
            if execution.process is not None:
                try:
                    execution.process.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    raise TimeoutError(f"execution {execution.name} still running after {timeout:.0f} s") from None
            self._settle(execution)

    def wait(self, name: str, timeout: float = 600.0) -> Execution:
        """Block until the execution NAME ended (or TimeoutError)."""
        execution = self.execution(name)
        if execution.process is not None:
            try:
                execution.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise TimeoutError(f"execution {name} still running after {timeout:.0f} s") from None
        self._settle(execution)
        return execution

    # -- serving ----------------------------------------------------------------------------------
    def _authorize(self, req: Request, permission: str, resource: str) -> Reply | None:
        decision = self.policy.check(req.account, permission, resource)
        self.audit.write(
            req.account,
            req.method,
            req.path,
            permission,
            resource,
            decision.allowed,
            decision.granted_by,
            decision.binding,
        )
        if decision.allowed:
            return None
        return error_reply(403, "forbidden", denied_message(req.account, permission, resource))

    def _handle(self, req: Request) -> Reply:
        match = _RUN.match(req.path)
        if match and req.method == "POST":
            return self._run(req, match["project"], match["region"], match["job"])
        match = _OPERATION.match(req.path)
        if match and req.method == "GET":
            name = req.path[len("/v2/") :]
            denied = self._authorize(req, "run.operations.get", name)
            return denied or self._operation(name)
        match = _EXECUTIONS.match(req.path)
        if match and req.method == "GET":
            job = run_job_name(match["project"], match["region"], match["job"])
            denied = self._authorize(req, "run.executions.list", job)
            mine = [e for e in self.executions() if e.name.startswith(job + "/")]
            for execution in mine:
                self._settle(execution)  # a process that ended is a completed execution
            listed = [e.resource() for e in mine]
            return denied or json_reply(200, {"executions": listed})
        match = _EXECUTION.match(req.path)
        if match and req.method == ("POST" if match["cancel"] else "GET"):
            name = req.path[len("/v2/") :].removesuffix(":cancel")
            denied = self._authorize(req, "run.executions.cancel" if match["cancel"] else "run.executions.get", name)
            return denied or self._execution_reply(name, cancel=bool(match["cancel"]))
        self.audit.write(req.account, req.method, req.path, None, None, False, None)
        return error_reply(
            501, "notImplemented", f"the local Cloud Run stand-in does not serve {req.method} {req.path}"
        )

    def _run(self, req: Request, project: str, region: str, job: str) -> Reply:
        resource = run_job_name(project, region, job)
        body = req.json()
        overrides = body.get("overrides") or {}
        denied = self._authorize(req, "run.jobs.run", resource)
        if denied is None and any(overrides.get(k) for k in ("containerOverrides", "taskCount", "timeout")):
            denied = self._authorize(req, "run.jobs.runWithOverrides", resource)
        if denied is not None:
            return denied
        definition = self.jobs.get(job)
        if definition is None or (project, region) != (self.project, self.region):
            return error_reply(404, "notFound", f"Resource '{resource}' was not found")
        if int(overrides.get("taskCount") or 1) != 1:
            return error_reply(400, "badRequest", "the local Cloud Run stand-in runs one task per execution")
        containers = overrides.get("containerOverrides") or []
        if len(containers) > 1:
            return error_reply(400, "badRequest", "the job has one container; got overrides for several")
        try:
            timeout = duration_seconds(overrides.get("timeout")) or definition.timeout_seconds
        except ValueError as exc:
            return error_reply(400, "badRequest", str(exc))
        override = containers[0] if containers else {}
        args = list(definition.args)
        if override.get("clearArgs"):
            args = []
        if override.get("args"):
            args = [str(a) for a in override["args"]]
        env = {**self.base_env, **definition.env}
        env.update({str(e["name"]): str(e.get("value", "")) for e in override.get("env") or []})
        execution = self._launch(
            resource, job, list(definition.command) + args, env, definition.cwd, timeout, definition.preload
        )
        return json_reply(
            200,
            {
                "name": execution.operation,
                "done": False,
                "metadata": {"@type": "type.googleapis.com/google.cloud.run.v2.Execution", **execution.resource()},
            },
        )

    def _launch(
        self,
        resource: str,
        job: str,
        argv: list[str],
        env: dict[str, str],
        cwd: Path | None,
        timeout: float,
        preload: str | None = None,
    ) -> Execution:
        suffix = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(5))
        name = f"{resource}/executions/{job}-{suffix}"
        env = {
            **env,
            "CLOUD_RUN_JOB": job,
            "CLOUD_RUN_EXECUTION": f"{job}-{suffix}",
            "CLOUD_RUN_TASK_INDEX": "0",
            "CLOUD_RUN_TASK_ATTEMPT": "0",
            "CLOUD_RUN_TASK_COUNT": "1",
        }
        operation = f"projects/{self.project}/locations/{self.region}/operations/{uuid.uuid4()}"
        log_path = self.work_dir / f"{job}-{suffix}.log"
        execution = Execution(name, operation, job, argv, env, log_path, datetime.now(UTC))
        if preload and len(argv) >= 2 and argv[0] == sys.executable and argv[1].endswith(".py"):
            # the server's environment: the system's variables and the job's import path, as in its image
            server = fork_server(preload, {**self.base_env, "PYTHONPATH": env.get("PYTHONPATH", "")})
            execution.process = server.run_script(argv[1:], env, cwd, log_path)
        else:
            with log_path.open("wb") as log:
                execution.process = subprocess.Popen(
                    argv,
                    env=env,
                    cwd=cwd,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
        with self._lock:
            self._executions[name] = execution
            self._operations[operation] = name
        threading.Thread(target=self._watch, args=(execution, timeout), name=f"run-{job}-{suffix}", daemon=True).start()
        return execution

    def _watch(self, execution: Execution, timeout: float) -> None:
        assert execution.process is not None
        try:
            execution.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            execution.process.kill()
            execution.process.wait()
        self._settle(execution)

    def _settle(self, execution: Execution) -> None:
        with self._lock:
            if execution.exit_code is None and execution.process is not None and execution.process.poll() is not None:
                execution.completed = datetime.now(UTC)
                execution.exit_code = execution.process.returncode

    def _operation(self, name: str) -> Reply:
        with self._lock:
            execution_name = self._operations.get(name)
        if execution_name is None:
            return error_reply(404, "notFound", f"Operation '{name}' was not found")
        execution = self.execution(execution_name)
        self._settle(execution)
        metadata = {"@type": "type.googleapis.com/google.cloud.run.v2.Execution", **execution.resource()}
        body: dict[str, Any] = {"name": name, "metadata": metadata, "done": execution.exit_code is not None}
        if execution.state == "succeeded":
            body["response"] = body["metadata"]
        elif execution.exit_code is not None:
            body["error"] = {"code": 1 if execution.cancelled else 2, "message": execution.failure()}
        return json_reply(200, body)

    def _execution_reply(self, name: str, *, cancel: bool) -> Reply:
        with self._lock:
            execution = self._executions.get(name)
        if execution is None:
            return error_reply(404, "notFound", f"Resource '{name}' was not found")
        if cancel and execution.process is not None and execution.process.poll() is None:
            execution.cancelled = True
            execution.process.terminate()
            execution.process.wait(timeout=30)
        self._settle(execution)
        return json_reply(200, execution.resource())
