"""One whole run on the embedded chain: drop files, let the events drive the stages, summarize."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import context
from .config import Faults, Settings
from .faults import FaultPlan
from .lake import batch_id_for
from .logs import log_to_file
from .media import content_type_for
from .paths import shown
from .runtime import InProcessApps, LocalRuntime
from .status import collect, run_summary

SUBSCRIPTION = "transform"  #: the transform function's subscription (terraform/pubsub.tf makes it in GCP)


def with_fault_plan(settings: Settings, faults: FaultPlan | None) -> Settings:
    """The settings with the plan's crash points (the function servers get them in their environment)."""
    if not faults or not faults.crash:
        return settings
    return settings.with_changes(faults=Faults(crash=faults.crash, state=settings.faults.state))


def run_local(
    settings: Settings,
    files: list[tuple[Path, str]],
    *,
    progress: Callable[[str], None] | None = None,
    timeout: float = 1800.0,
    faults: FaultPlan | None = None,
) -> dict[str, Any]:
    """Upload each (path, object name) to the landing bucket and deliver events until idle."""
    say = progress or (lambda _m: None)
    settings = with_fault_plan(settings, faults)
    ctx = context.Context(settings)
    context.use(ctx)
    ctx.provision()  # the embedded chain's buckets, spool and tables
    ctx.transformer  # noqa: B018 - dbt starts importing and parsing now, while ingest and load work
    apps = InProcessApps()
    (settings.home / "logs").mkdir(parents=True, exist_ok=True)
    log_to_file(settings.home / "logs" / "pipeline.jsonl")
    runtime = LocalRuntime(ctx, apps, subscription=ctx.bus.subscribe(SUBSCRIPTION), faults=faults, progress=say)
    runtime.eventarc.mark_seen()  # objects already there were handled by earlier runs, or are found by the sweep:
    from .sweep import sweep  # nothing runs before this command, so nothing is in flight: no grace period

    for finding in sweep(ctx, grace_seconds=0, run_timeout_seconds=0).redriven:
        say(f"sweep: {finding.kind} {finding.subject} → {finding.action}")
    batch_ids = []
    started = time.monotonic()
    for path, name in files:
        info = ctx.landing.put(name, path, content_type=content_type_for(path))
        batch_ids.append(batch_id_for(ctx.landing.uri(name), info.generation))
        say(f"dropped {name} into {shown(settings.landing)} (generation {info.generation})")
    stats = runtime.run_until_idle(timeout=timeout)
    seconds = dict(stats.seconds)
    with ctx.warehouse.session():  # the summary's and the page's reads share one open warehouse
        summary = run_summary(
            collect(ctx), batch_ids, dead_letters=stats.dead_letters, seconds=seconds, deliveries=stats.deliveries
        )
        summary["dashboard"] = None
        if any(b["state"] == "transformed" for b in summary["batches"]):
            from .analytics import Analytics
            from .dashboard import build_dashboard  # the page follows every successful dbt run

            dashboard_started = time.monotonic()
            source = Analytics(ctx.warehouse, project_dir=settings.dbt_project, label=settings.warehouse)
            summary["dashboard"] = str(build_dashboard(settings, source=source))
            summary["seconds"]["dashboard"] = round(time.monotonic() - dashboard_started, 2)
            say(f"dashboard written to {shown(summary['dashboard'])}")
    summary["seconds"]["total"] = round(time.monotonic() - started, 2)
    return summary
