"""One execution of the local Cloud Run stand-in (:mod:`.run_admin`): its process, its outcome, and
how the v2 REST API shows it (an ``Execution`` resource)."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..dbt_forkserver import ScriptProcess

STATE_KEY = "retail-pipeline.local/state"  #: annotation: running | succeeded | failed | cancelled
EXIT_KEY = "retail-pipeline.local/exit-code"  #: annotation: the process's exit code ("" while running)


@dataclass
class Execution:
    name: str
    operation: str
    job: str  #: short job name
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    created: datetime
    process: subprocess.Popen | ScriptProcess | None = None
    exit_code: int | None = None
    completed: datetime | None = None
    cancelled: bool = False

    @property
    def state(self) -> str:
        """running | succeeded | failed | cancelled."""
        if self.exit_code is None:
            return "running"
        if self.cancelled:
            return "cancelled"
        return "succeeded" if self.exit_code == 0 else "failed"

    def resource(self) -> dict[str, Any]:
        """The Execution as the v2 REST API shows it."""
        stamp = _rfc3339(self.created)
        done = self.exit_code is not None
        changed = _rfc3339(self.completed or self.created)
        condition: dict[str, Any] = {"type": "Completed", "lastTransitionTime": changed}
        if not done:
            condition.update(state="CONDITION_PENDING", message="The execution is running.")
        elif self.state == "succeeded":
            condition.update(state="CONDITION_SUCCEEDED", message="Execution completed successfully in one task.")
        else:
            condition.update(
                state="CONDITION_FAILED",
                executionReason="CANCELLED" if self.cancelled else "NON_ZERO_EXIT_CODE",
                message=self.failure(),
            )
        body: dict[str, Any] = {
            "name": self.name,
            "uid": self.name.rsplit("-", 1)[-1],
            "job": self.job,
            "createTime": stamp,
            "startTime": stamp,
            "taskCount": 1,
            "parallelism": 1,
            "reconciling": not done,
            "runningCount": 0 if done else 1,
            "succeededCount": int(self.state == "succeeded"),
            "failedCount": int(self.state == "failed"),
            "cancelledCount": int(self.state == "cancelled"),
            "conditions": [condition],
            "logUri": self.log_path.resolve().as_uri(),
            "annotations": {STATE_KEY: self.state, EXIT_KEY: "" if self.exit_code is None else str(self.exit_code)},
        }
        if self.completed is not None:
            body["completionTime"] = _rfc3339(self.completed)
        return body

    def failure(self) -> str:
        if self.cancelled:
            return "The execution was cancelled."
        return f"Task {self.name}-task0 failed with exit code {self.exit_code}; see {self.log_path}."


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def duration_seconds(value: Any) -> float | None:
    if value in (None, ""):
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)s", str(value))
    if not match:
        raise ValueError(f"bad duration {value!r}: expected e.g. '3600s'")
    return float(match[1])
