"""Fault injection for tests: crash a named step on its first attempt.

``RETAIL_PIPELINE_CRASH=ingest.partition,load.publish`` makes each named point raise
:class:`InjectedFault` the first time it is reached for a given object (tracked in a folder under
``RETAIL_PIPELINE_FAULT_STATE``), so the platform's retry runs the step again and must converge.
Unset (the default), every point is a no-op.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


class InjectedFault(RuntimeError):
    """A deliberate transient failure."""


def maybe_crash(point: str, key: str) -> None:
    wanted = os.environ.get("RETAIL_PIPELINE_CRASH", "")
    if not wanted or point not in wanted.split(","):
        return
    state = Path(os.environ.get("RETAIL_PIPELINE_FAULT_STATE", ".retail/faults"))
    state.mkdir(parents=True, exist_ok=True)
    marker = state / hashlib.sha1(f"{point}:{key}".encode()).hexdigest()
    if marker.exists():
        return
    marker.touch()
    raise InjectedFault(f"injected fault at {point} ({key})")
