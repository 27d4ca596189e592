"""The emulator chain's lifecycle: its settings, the record a home keeps of it, and a whole run.

- :func:`emulator_settings`: gs:// buckets, BigQuery datasets ``retail<suffix>_*``, a Pub/Sub
  topic, each client pointed at the emulators; reports, when on, under ``gs://reports<suffix>/reports/``.
- :class:`Chain`: provisions what Terraform makes in GCP, starts the three function servers,
  subscribes the transform server to the topic (a push subscription on Pub/Sub; the local
  dispatcher pushes from the spool bus otherwise) and plays Eventarc for the buckets.
- :func:`run_on_emulators`: one whole run, with the same summary as the embedded run.
- The chain a home used is recorded in ``HOME/chain.json``; :func:`recorded_settings` gives later
  commands (``status``, ``drop``, ``replay``) that chain's settings.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import context
from .config import DEFAULT_TOPIC, Endpoints, Settings
from .emulators import PROJECT, Emulators
from .faults import FaultPlan
from .lake import batch_id_for
from .media import content_type_for
from .pipeline import SUBSCRIPTION, with_fault_plan
from .runtime import HttpApps, LocalRuntime
from .servers import FunctionServers, reachable
from .status import FINAL_STATES, batch_state, collect, run_summary
from .strict.httpserve import HEALTH_PATH
from .strict.stack import StrictLayer

CHAIN_FILE = "chain.json"
SWEEP_EVERY = 60  #: seconds between sweeps while a run waits for its batches (also their grace)
POLL_SECONDS = 2.0  #: between two looks at the batches' states while a run waits for them
LOOK_WHILE_BUILDING = 20.0  #: seconds between looks while a job execution runs (see Chain.look_due)


class ChainError(RuntimeError):
    """The chain cannot run or be reached; the message says why."""


def emulator_settings(home: Path, emulators: Emulators, suffix: str = "", base: Settings | None = None) -> Settings:
    """Settings of the emulator chain: gs:// buckets, BigQuery datasets ``retail<suffix>_*``, Pub/Sub;
    any reports setting becomes the chain's reports bucket ``gs://reports<suffix>/reports/``."""
    base = base or Settings.from_env(home)
    return base.with_changes(
        home=Path(home).resolve(),
        landing=f"gs://landing{suffix}",
        lake=f"gs://lake{suffix}",
        reports=f"gs://reports{suffix}/reports/" if base.reports else "",
        warehouse=f"bigquery://{emulators.project}/retail{suffix.replace('-', '_')}",
        bus=f"pubsub://{emulators.project}/{DEFAULT_TOPIC}{suffix}",
        transform="dbt",
        endpoints=Endpoints(
            storage=emulators.gcs_url,
            bigquery=emulators.bq_url,
            pubsub=emulators.pubsub_host if emulators.with_pubsub else None,
            project=emulators.project,
        ),
    )


# -- the record a home keeps ---------------------------------------------------------------------
def write_chain(settings: Settings, emulators: Emulators | None, servers: dict[str, str] | None = None) -> Path:
    record = {
        "chain": "emulators" if emulators else "embedded",
        "env": settings.to_env(),
        "emulators": None
        if emulators is None
        else {"root": str(emulators.root), "project": emulators.project, "endpoints": emulators.env()},
        "servers": servers or {},
        "pid": os.getpid(),
        "written_at": datetime.now(UTC).isoformat(),
    }
    path = settings.home / CHAIN_FILE
    settings.home.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2))
    return path


def read_chain(home: Path) -> dict[str, Any] | None:
    path = Path(home) / CHAIN_FILE
    return json.loads(path.read_text()) if path.exists() else None


@dataclass
class Recorded:
    settings: Settings
    servers: dict[str, str]  #: function URLs, when a `serve` of this home is running
    emulators: Emulators | None = None  #: emulators started for this command (stop them after)


def recorded_settings(settings: Settings, *, start_emulators: bool, with_pubsub: bool = False) -> Recorded:
    """The settings of the chain this home last used. An emulator home whose emulators are not running
    gets them started on the home's data (when ``start_emulators``), on new ports."""
    record = read_chain(settings.home)
    if record is None:
        return Recorded(settings, {})
    recorded = Settings.from_env(settings.home, environ=record["env"])
    servers = {k: v for k, v in record.get("servers", {}).items()}
    if record["chain"] != "emulators":
        return Recorded(recorded, servers)
    endpoints = recorded.endpoints
    if (
        endpoints.storage
        and reachable(endpoints.storage + HEALTH_PATH)  # the strict layer answers it unaudited; emulators answer
        and endpoints.bigquery
        and reachable(endpoints.bigquery + HEALTH_PATH)
    ):
        return Recorded(recorded, servers)
    direct = record["emulators"].get("endpoints") or {}  # the emulators themselves, behind the gateways
    if (
        direct.get("STORAGE_EMULATOR_HOST")
        and reachable(direct["STORAGE_EMULATOR_HOST"] + "/storage/v1/b")
        and reachable(direct.get("BIGQUERY_EMULATOR_HOST", "") + "/readyz")
    ):
        return Recorded(
            recorded.with_changes(
                endpoints=Endpoints(
                    storage=direct["STORAGE_EMULATOR_HOST"],
                    bigquery=direct["BIGQUERY_EMULATOR_HOST"],
                    pubsub=direct.get("PUBSUB_EMULATOR_HOST"),
                    project=record["emulators"]["project"],
                )
            ),
            servers,
        )
    if not start_emulators:
        raise ChainError("this home uses the emulator chain, and its emulators are not running")
    emulators = Emulators(
        Path(record["emulators"]["root"]), project=record["emulators"]["project"], with_pubsub=with_pubsub
    )
    try:
        emulators.start()
    except Exception as exc:
        raise ChainError(f"this home uses the emulator chain, and its emulators would not start: {exc}") from exc
    suffix_settings = recorded.with_changes(
        endpoints=Endpoints(
            storage=emulators.gcs_url,
            bigquery=emulators.bq_url,
            pubsub=emulators.pubsub_host if with_pubsub else None,
            project=emulators.project,
        )
    )
    return Recorded(suffix_settings, {}, emulators)


# -- a running chain ------------------------------------------------------------------------------
class Chain:
    """One running chain: the function servers, the transform's subscription, a dispatcher."""

    def __init__(
        self,
        settings: Settings,
        emulators: Emulators | None = None,
        progress: Callable[[str], None] | None = None,
        faults: FaultPlan | None = None,
        strict: bool = True,
    ) -> None:
        self.settings = with_fault_plan(settings, faults)
        self.emulators = emulators
        self.say = progress or (lambda _m: None)
        self.faults = faults
        self.servers: FunctionServers | None = None
        self.ctx = context.Context(self.settings)
        self.runtime: LocalRuntime | None = None
        self.subscription: str | None = None
        self.strict: StrictLayer | None = None
        if strict and emulators is not None:
            self.strict = StrictLayer(emulators.gcs_url, emulators.bq_url, self.settings.home / "strict")

    def start(self) -> Chain:
        identities: dict[str, str] = {}
        if self.strict is not None:
            # every call goes through the strict layer, each component as its Terraform identity;
            # this process (the user, Eventarc, `terraform apply`) acts as the deployer
            settings = self.strict.start(self.settings)
            self.settings = settings.with_changes(identity=self.strict.admin)
            identities = self.strict.identities()
            self.ctx = context.Context(self.settings)
        context.use(self.ctx)
        self.ctx.provision()  # what Terraform makes in GCP
        self.servers = FunctionServers(self.settings, identities).start()
        # the topic in the push URL path: functions-framework puts it in the CloudEvent's source
        subscription = self.ctx.bus.subscribe(
            SUBSCRIPTION + self._suffix(), push_endpoint=self.servers.urls["transform"] + self.ctx.bus.topic
        )
        self.subscription = subscription.name
        self.runtime = LocalRuntime(
            self.ctx, HttpApps(self.servers.urls), subscription=subscription, faults=self.faults, progress=self.say
        )
        self.runtime.eventarc.mark_seen()  # generations already there were handled by earlier runs
        write_chain(self.settings, self.emulators, self.servers.urls)
        return self

    def _suffix(self) -> str:
        return self.settings.bus_url.topic[len(DEFAULT_TOPIC) :]

    def wait_for_batches(self, batch_ids: list[str], timeout: float) -> dict[str, Any]:
        """Deliver storage events until idle, then wait until every batch is in a final state."""
        assert self.runtime is not None
        deadline = time.monotonic() + timeout
        self.runtime.run_until_idle(timeout=timeout)
        next_sweep = time.monotonic() + SWEEP_EVERY
        looked, mine = 0.0, {}
        while True:
            if time.monotonic() >= next_sweep:  # what the events left behind (as `serve` and Cloud Scheduler do)
                from .sweep import sweep

                sweep(self.ctx, grace_seconds=SWEEP_EVERY)
                next_sweep = time.monotonic() + SWEEP_EVERY
            if self.look_due(looked):
                # the batches' states only (one query; the whole status once at the end): on BigQuery each
                # query is a job, and this loop runs for as long as the builds do
                looked = time.monotonic()
                states = {r.batch_id: batch_state(r) for r in self.ctx.warehouse.batch_records()}
                mine = {b: states[b] for b in batch_ids if b in states}
                if len(mine) == len(batch_ids) and all(s in FINAL_STATES for s in mine.values()):
                    if self.strict is not None:  # a job's work after its recorded outcome (the report) ends too
                        self.strict.wait_for_executions(max(1.0, deadline - time.monotonic()))
                    return collect(self.ctx)
            if time.monotonic() > deadline:
                raise TimeoutError(f"batches not finished after {timeout:.0f} s: {mine}")
            self.runtime.step()  # the spool bus (serve without emulators), and late lake objects
            time.sleep(POLL_SECONDS)

    def look_due(self, looked: float) -> bool:
        """Whether a wait should query the warehouse now, its last look being at ``looked`` (monotonic).
        Not while a job execution runs: a batch becomes transformed (or failed) when the job records
        it, at its end. Every LOOK_WHILE_BUILDING seconds all the same (a batch can also be rejected,
        superseded or retracted meanwhile)."""
        if self.strict is None or not self.strict.executing():
            return True
        return time.monotonic() - looked >= LOOK_WHILE_BUILDING

    def stop(self) -> None:
        if self.servers is not None:
            self.servers.stop()
        if self.strict is not None:
            self.strict.stop()
        context.use(None)


def run_on_emulators(
    settings: Settings,
    files: list[tuple[Path, str]],
    *,
    progress: Callable[[str], None] | None = None,
    timeout: float = 1800.0,
    faults: FaultPlan | None = None,
    emulators: Emulators | None = None,
    suffix: str = "",
) -> dict[str, Any]:
    """One whole run on the emulator chain; returns the same summary as pipeline.run_local.

    ``emulators``: running emulators to use (tests share one set); default: start them under
    ``HOME/emulators`` and stop them at the end (their data stays there for ``status``).
    """
    say = progress or (lambda _m: None)
    own = emulators is None
    started = time.monotonic()
    if emulators is None:
        say("starting the GCS, Pub/Sub and BigQuery emulators")
        emulators = Emulators(settings.home / "emulators", project=PROJECT).start()
    chain = Chain(
        emulator_settings(settings.home, emulators, suffix, base=settings), emulators, progress=say, faults=faults
    )
    try:
        chain.start()
        batch_ids = []
        for path, name in files:
            info = chain.ctx.landing.put(name, path, content_type=content_type_for(path))
            batch_ids.append(batch_id_for(chain.ctx.landing.uri(name), info.generation))
            say(f"dropped {name} into {chain.settings.landing} (generation {info.generation})")
        report = chain.wait_for_batches(batch_ids, timeout)
        assert chain.runtime is not None
        stats = chain.runtime.stats
    finally:
        chain.stop()
        if own:
            emulators.stop()
    seconds = {**stats.seconds, "total": time.monotonic() - started}
    summary = run_summary(
        report, batch_ids, dead_letters=stats.dead_letters, seconds=seconds, deliveries=stats.deliveries
    )
    return {**summary, "subscription": chain.subscription}
