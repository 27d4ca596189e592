"""One whole run on the embedded chain: drop files, let the events drive the stages, summarize."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

from . import context
from .config import Settings
from .ingest import batch_id_for
from .logs import log_to_file
from .runtime import FaultPlan, InProcessApps, LocalRuntime
from .status import collect


def run_local(settings: Settings, files: list[tuple[Path, str]], *, progress: Callable[[str], None] | None = None,
              timeout: float = 1800.0, faults: FaultPlan | None = None) -> dict:
    """Upload each (path, object name) to the landing bucket and deliver events until idle."""
    say = progress or (lambda _m: None)
    if faults and faults.crash:
        os.environ["RETAIL_PIPELINE_CRASH"] = ",".join(faults.crash)
        os.environ.setdefault("RETAIL_PIPELINE_FAULT_STATE", str(settings.home / "faults"))
    ctx = context.Context(settings)
    context.use(ctx)
    ctx.warehouse  # noqa: B018 - creates the raw tables before the first event
    ctx.transformer  # noqa: B018 - dbt starts importing and parsing now, while ingest and load work
    apps = InProcessApps()
    (settings.home / "logs").mkdir(parents=True, exist_ok=True)
    log_to_file(settings.home / "logs" / "pipeline.jsonl")
    runtime = LocalRuntime(ctx, apps, faults=faults, progress=say)
    runtime.eventarc.poll()  # objects already there were handled by earlier runs
    batch_ids = []
    started = time.monotonic()
    for path, name in files:
        info = ctx.landing.put(name, path)
        batch_ids.append(batch_id_for(ctx.landing.uri(name), info.generation))
        say(f"dropped {name} into {settings.landing} (generation {info.generation})")
    try:
        stats = runtime.run_until_idle(timeout=timeout)
    finally:
        if faults and faults.crash:
            os.environ.pop("RETAIL_PIPELINE_CRASH", None)
    report = collect(ctx)
    mine = [b for b in report["batches"] if b["batch_id"] in batch_ids]
    ok = (not stats.dead_letters and len(mine) == len(batch_ids)
          and all(b["state"] in ("transformed", "superseded") for b in mine))
    seconds = {k: round(v, 2) for k, v in stats.seconds.items()}
    dashboard = None
    if any(b["state"] == "transformed" for b in mine) and settings.warehouse.startswith("duckdb://"):
        from .dashboard import build_dashboard  # the page follows every successful dbt run

        dashboard_started = time.monotonic()
        dashboard = str(build_dashboard(settings))
        seconds["dashboard"] = round(time.monotonic() - dashboard_started, 2)
        say(f"dashboard written to {dashboard}")
    seconds["total"] = round(time.monotonic() - started, 2)
    return {**report, "batches": mine, "ok": ok, "seconds": seconds, "dead_letters": stats.dead_letters,
            "deliveries": dict(stats.deliveries), "dashboard": dashboard}
