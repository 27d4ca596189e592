"""The sweep: makes the events an optimisation, not the only path.

It compares the landing bucket with the warehouse's batches, the lake with the load ledger and
complete batches with transform runs, and re-drives what is missing or stuck for longer than the
grace period (``Settings.sweep_grace_seconds``; younger things may still have an event on the way):

- a landing object with no batch and no manifest in the lake → the object is rewritten (a new
  generation, same bytes and metadata), so the platform's finalize event ingests it;
- a lake object with no ledger row → rewritten, so its finalize event loads it;
- a complete batch never claimed → a message on the bus with the claim key ``initial``, the key
  the load's own message uses, so a sweep racing that message still gives one run;
- a claim whose run never finished, older than the run timeout too (``Settings.run_timeout_seconds``:
  a dbt job execution may run that long, and a second build beside it would be wasted) → a message
  with a claim key derived from the stuck claim (``sweep-<hash of it>``), so two sweeps ask for one
  new run, not two.

The re-drive is the same on every chain (ObjectStore.rewrite and MessageBus.publish); a sweep run
twice, or racing the events, changes nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .context import Context
from .lake import MANIFEST_PREFIX, REJECTED_PREFIX, batch_id_for
from .ports import BatchRecord
from .stages import lake_object_kind
from .status import batch_state

STUCK_RUN_STATES = ("running", "started")


@dataclass(frozen=True)
class Finding:
    kind: str  #: 'landing_without_batch', 'lake_object_not_loaded', 'batch_never_claimed', 'run_never_finished'
    subject: str  #: the object name or batch id
    age_seconds: int
    action: str  #: what the sweep did: 'rewritten', 'published', or 'none' (dry run / within the grace period)
    detail: str = ""


@dataclass
class SweepReport:
    grace_seconds: int
    dry_run: bool
    findings: list[Finding] = field(default_factory=list)

    @property
    def redriven(self) -> list[Finding]:
        return [f for f in self.findings if f.action in ("rewritten", "published")]

    def as_dict(self) -> dict[str, Any]:
        return {
            "grace_seconds": self.grace_seconds,
            "dry_run": self.dry_run,
            "redriven": len(self.redriven),
            "findings": [asdict(f) for f in self.findings],
        }


def parse_time(text: str | datetime | None) -> datetime | None:
    """A warehouse timestamp (text or datetime) as an aware UTC datetime; naive ones are UTC."""
    if text is None:
        return None
    moment = text if isinstance(text, datetime) else datetime.fromisoformat(str(text))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def stuck_claim_key(claim_key: str) -> str:
    """The claim key of the run that replaces a stuck one: derived, so repeated sweeps agree."""
    return "sweep-" + hashlib.sha1(claim_key.encode()).hexdigest()[:12]


class Sweeper:
    def __init__(
        self,
        ctx: Context,
        *,
        grace_seconds: int | None = None,
        run_timeout_seconds: int | None = None,
        dry_run: bool = False,
        now: datetime | None = None,
    ) -> None:
        self.ctx = ctx
        self.grace = ctx.settings.sweep_grace_seconds if grace_seconds is None else grace_seconds
        #: a run younger than this may still be running (a dbt job execution): not stuck yet
        self.run_timeout = ctx.settings.run_timeout_seconds if run_timeout_seconds is None else run_timeout_seconds
        self.dry_run = dry_run
        self.now = now or datetime.now(UTC)
        self.report = SweepReport(self.grace, dry_run)

    def _age(self, moment: datetime | None) -> int:
        return int((self.now - moment).total_seconds()) if moment else 0

    def _due(self, moment: datetime | None, wait: int) -> bool:
        return moment is None or self.now - moment >= timedelta(seconds=wait)

    def _note(
        self, kind: str, subject: str, moment: datetime | None, act: str, detail: str = "", *, wait: int | None = None
    ) -> bool:
        """Record a finding; True when the caller should act on it (older than ``wait``, default the grace)."""
        wait = self.grace if wait is None else wait
        due = self._due(moment, wait)
        action = act if due and not self.dry_run else "none"
        if not due:
            period = "grace period" if wait == self.grace else "run timeout (it may still be running)"
            detail = (detail + "; " if detail else "") + f"within the {wait} s {period}"
        self.report.findings.append(Finding(kind, subject, self._age(moment), action, detail))
        return action != "none"

    def run(self) -> SweepReport:
        records = self.ctx.warehouse.batch_records()
        self.landing(records)
        self.lake(records)
        self.batches(records)
        return self.report

    # -- landing bucket vs batches --------------------------------------------------------------
    def landing(self, records: list[BatchRecord]) -> None:
        landing, lake = self.ctx.landing, self.ctx.lake
        newest: dict[str, int] = {}
        for r in records:
            newest[r.source_uri] = max(newest.get(r.source_uri, -1), r.source_generation, r.newest_generation)
        for info in list(landing.list()):
            if info.name.startswith(REJECTED_PREFIX) or info.name.endswith("/"):
                continue
            uri = landing.uri(info.name)
            if newest.get(uri, -1) >= info.generation:
                continue
            batch_id = batch_id_for(uri, info.generation)
            if lake.stat(f"{MANIFEST_PREFIX}{batch_id}.json") is not None:
                continue  # ingested: what is missing is loads, which the lake check finds
            if self._note(
                "landing_without_batch",
                info.name,
                info.updated,
                "rewritten",
                f"generation {info.generation} never reached the warehouse",
            ):
                landing.rewrite(info.name)

    # -- lake vs load ledger --------------------------------------------------------------------
    def lake(self, records: list[BatchRecord]) -> None:
        by_batch = {r.batch_id: r for r in records}
        newest: dict[str, int] = {}
        for r in records:
            newest[r.source_uri] = max(newest.get(r.source_uri, -1), r.newest_generation)
        lake = self.ctx.lake
        for info in list(lake.list()):
            kind = lake_object_kind(info.name)
            meta = info.metadata
            if kind is None or "batch_id" not in meta or "source_uri" not in meta:
                continue
            if newest.get(meta["source_uri"], -1) > int(meta.get("source_generation", 0)):
                continue  # a newer generation of the landing object replaced this batch
            record = by_batch.get(meta["batch_id"])
            if record is not None:
                if kind == "manifest" and record.manifest_state is not None:
                    continue
                if kind != "manifest" and (kind, meta.get("partition", "")) in record.loaded:
                    continue
            if self._note(
                "lake_object_not_loaded",
                info.name,
                info.updated,
                "rewritten",
                f"batch {meta['batch_id']}: no ledger row",
            ):
                lake.rewrite(info.name)

    # -- complete batches vs transform runs -----------------------------------------------------
    def batches(self, records: list[BatchRecord]) -> None:
        by_batch = {r.batch_id: r for r in records}
        for progress in self.ctx.warehouse.claimable_batches():
            record = by_batch.get(progress.batch_id)
            moment = parse_time(record.ingested_at) if record else None
            if self._note("batch_never_claimed", progress.batch_id, moment, "published", "complete, never transformed"):
                self._publish(progress.batch_id, "initial")
        for record in records:
            run = record.run
            if not run or run["state"] not in STUCK_RUN_STATES or batch_state(record) != "transforming":
                continue
            key = stuck_claim_key(run["claim_key"])
            if self._note(
                "run_never_finished",
                record.batch_id,
                parse_time(run["started_at"]),
                "published",
                f"claim {run['claim_key']} is still '{run['state']}'; new claim {key}",
                wait=max(self.grace, self.run_timeout),
            ):
                self._publish(record.batch_id, key)

    def _publish(self, batch_id: str, claim_key: str) -> None:
        attributes = {"batch_id": batch_id, "kind": "sweep"}
        if claim_key != "initial":
            attributes["replay"] = claim_key  # the transform function's claim key attribute
        self.ctx.bus.publish(json.dumps({"batch_id": batch_id, "sweep": claim_key}).encode(), attributes)


def sweep(
    ctx: Context,
    *,
    grace_seconds: int | None = None,
    run_timeout_seconds: int | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> SweepReport:
    """One sweep over the context's buckets, warehouse and bus (see the module docstring). A run still
    'running' counts as stuck only past ``max(grace, run timeout)`` (default ``Settings.run_timeout_seconds``)."""
    return Sweeper(
        ctx, grace_seconds=grace_seconds, run_timeout_seconds=run_timeout_seconds, dry_run=dry_run, now=now
    ).run()


def render(report: SweepReport) -> str:
    lines = [
        f"sweep (grace {report.grace_seconds} s{', dry run' if report.dry_run else ''}): "
        f"{len(report.findings)} found, {len(report.redriven)} re-driven"
    ]
    for f in report.findings:
        lines.append(
            f"  {f.kind:<24} {f.subject}  age {f.age_seconds} s  → {f.action}" + (f"  ({f.detail})" if f.detail else "")
        )
    return "\n".join(lines)
