"""The long-running local runtime over HTTP, the emulator chain, and replay.

- ``serve [--emulators]``: the three functions as functions-framework servers on localhost; a
  dispatcher plays Eventarc (polls the landing and lake buckets for new generations, POSTs
  binary-mode CloudEvents). Messages reach the transform server by a Pub/Sub push subscription
  (emulator) or from the spool bus (embedded). Ctrl-C stops everything it started.
- ``run --emulators`` (an option of ``run``, see :func:`run_on_emulators`): one whole run on the
  emulator chain, same summary as the embedded run.
- ``replay BATCH_ID``: re-emit finalize events for the batch's lake objects and re-publish a
  message with a fresh claim key, so the batch is re-loaded (a no-op by the ledger) and re-transformed.

The chain a home used is recorded in ``HOME/chain.json``; :func:`use_recorded_chain` makes every
command (``status``, ``drop``, ``replay``) read that chain, starting the storage and BigQuery
emulators on the home's data when they are not running.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import click

from .config import Settings
from .emulators import LOCALHOST, PROJECT, Emulators, EmulatorError, free_port
from .runtime import FUNCTIONS_DIR, TARGETS, FaultPlan, HttpApps, LocalRuntime

CHAIN_FILE = "chain.json"
TOPIC = "partition-loaded"
SUBSCRIPTION = "transform"
FINAL_STATES = ("transformed", "superseded", "rejected", "transform_failed")


# -- settings of a chain ---------------------------------------------------------------------
def emulator_settings(home: Path, suffix: str = "") -> Settings:
    """Settings of the emulator chain: gs:// buckets, BigQuery datasets ``retail<suffix>_*``, Pub/Sub."""
    base = Settings.from_env(home)
    return dataclasses.replace(base, landing=f"gs://landing{suffix}", lake=f"gs://lake{suffix}",
                               warehouse=f"bigquery://{PROJECT}/retail{suffix.replace('-', '_')}",
                               bus=f"pubsub://{PROJECT}/{TOPIC}{suffix}", transform="dbt")


def write_chain(settings: Settings, emulators: Emulators | None, servers: dict[str, str] | None = None) -> Path:
    """Record which chain the home uses (read back by :func:`use_recorded_chain`)."""
    record = {"chain": "emulators" if emulators else "embedded",
              "settings": {k: getattr(settings, k) for k in ("landing", "lake", "warehouse", "bus", "transform")},
              "emulators": None if emulators is None else {
                  "root": str(emulators.root), "env": emulators.env(), "project": emulators.project},
              "servers": servers or {}, "pid": os.getpid(),
              "written_at": datetime.now(timezone.utc).isoformat()}
    path = settings.home / CHAIN_FILE
    settings.home.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2))
    return path


def read_chain(home: Path) -> dict | None:
    path = Path(home) / CHAIN_FILE
    return json.loads(path.read_text()) if path.exists() else None


def _reachable(url: str) -> bool:
    import requests  # lazily: every command imports this module

    try:
        requests.get(url, timeout=2)
        return True
    except requests.RequestException:
        return False


def use_recorded_chain(click_ctx: click.Context, settings: Settings) -> Settings:
    """The settings of the chain this home last used. For an emulator home whose emulators are not
    running, ``status``, ``drop`` and ``replay`` start them on the home's data (stopped on exit)."""
    command = click_ctx.invoked_subcommand
    record = read_chain(settings.home)
    if record is None or command in ("run", "serve"):
        return settings
    settings = dataclasses.replace(settings, **record["settings"])
    if record["chain"] != "emulators":
        return settings
    env = record["emulators"]["env"]
    if _reachable(env["STORAGE_EMULATOR_HOST"] + "/storage/v1/b") and _reachable(env["BIGQUERY_EMULATOR_HOST"] + "/readyz"):
        os.environ.update(env)
        return settings
    if command in ("status", "drop", "replay"):
        emu = Emulators(Path(record["emulators"]["root"]), project=record["emulators"]["project"],
                        with_pubsub=command == "replay")
        try:
            emu.start()
        except EmulatorError as exc:
            raise click.ClickException(f"this home uses the emulator chain, and its emulators would not start: {exc}")
        click_ctx.call_on_close(emu.stop)
        os.environ.update(emu.env())
        if command == "replay":
            _provision(settings)
    return settings


# -- the chain: emulators + three function servers --------------------------------------------
def _provision(settings: Settings) -> None:
    """Buckets, topic and tables the chain needs (Terraform makes them in GCP)."""
    from .adapters import open_bus, open_store

    for url in (settings.landing, settings.lake):
        store = open_store(url)
        if hasattr(store, "ensure_bucket"):
            store.ensure_bucket()
    bus = open_bus(settings)
    if hasattr(bus, "ensure_topic"):
        bus.ensure_topic()


class FunctionServers:
    """``functions-framework`` servers for ingest, load and transform, as subprocesses."""

    def __init__(self, settings: Settings, extra_env: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.extra_env = extra_env or {}
        self.ports = {t: free_port() for t in TARGETS}
        self.procs: dict[str, subprocess.Popen] = {}

    @property
    def urls(self) -> dict[str, str]:
        return {t: f"http://{LOCALHOST}:{p}/" for t, p in self.ports.items()}

    def start(self, timeout: float = 60.0) -> "FunctionServers":
        logs = self.settings.home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.settings.as_env(), **self.extra_env, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
               "PYTHONUNBUFFERED": "1"}
        tool = Path(sys.executable).parent / "functions-framework"
        for target, port in self.ports.items():
            with open(logs / f"function-{target}.log", "ab") as log:
                self.procs[target] = subprocess.Popen(
                    [str(tool), "--target", target, "--source", str(FUNCTIONS_DIR / target / "main.py"),
                     "--signature-type", "cloudevent", "--host", LOCALHOST, "--port", str(port)],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                    start_new_session=True)
        deadline = time.monotonic() + timeout
        for target, url in self.urls.items():
            while not _reachable(url):
                if self.procs[target].poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"the {target} function server did not start; see {logs}/function-{target}.log")
                time.sleep(0.2)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        self.procs.clear()


class Chain:
    """One running chain: optional emulators, the function servers, the push subscription, a dispatcher."""

    def __init__(self, settings: Settings, emulators: Emulators | None = None,
                 progress: Callable[[str], None] | None = None, faults: FaultPlan | None = None) -> None:
        self.settings = settings
        self.emulators = emulators
        self.say = progress or (lambda _m: None)
        self.faults = faults
        self.servers: FunctionServers | None = None
        self.subscription: str | None = None
        self.ctx = None
        self.runtime: LocalRuntime | None = None

    def start(self) -> "Chain":
        from . import context

        if self.emulators is not None:
            os.environ.update(self.emulators.env())
        _provision(self.settings)
        self.ctx = context.Context(self.settings)
        context.use(self.ctx)
        self.ctx.warehouse  # noqa: B018 - raw tables exist before the first event
        self.servers = FunctionServers(self.settings).start()
        bus = self.ctx.bus
        if hasattr(bus, "ensure_push_subscription"):
            # the topic in the push URL path: functions-framework puts it in the CloudEvent's source
            endpoint = self.servers.urls["transform"] + bus.topic
            self.subscription = bus.ensure_push_subscription(SUBSCRIPTION + self._suffix(), endpoint)
        self.runtime = LocalRuntime(self.ctx, HttpApps(self.servers.urls), faults=self.faults, progress=self.say,
                                    poll_bus=not hasattr(bus, "ensure_push_subscription"))
        self.runtime.eventarc.poll()  # generations already there were handled by earlier runs
        write_chain(self.settings, self.emulators, self.servers.urls)
        return self

    def _suffix(self) -> str:
        return self.settings.bus.rsplit("/", 1)[-1][len(TOPIC):]

    def wait_for_batches(self, batch_ids: list[str], timeout: float) -> dict:
        """Deliver storage events until idle, then wait until every batch is in a final state."""
        from .status import collect

        deadline = time.monotonic() + timeout
        self.runtime.run_until_idle(timeout=timeout)
        while True:
            report = collect(self.ctx)
            mine = {b["batch_id"]: b["state"] for b in report["batches"] if b["batch_id"] in batch_ids}
            if len(mine) == len(batch_ids) and all(s in FINAL_STATES for s in mine.values()):
                return report
            if time.monotonic() > deadline:
                raise TimeoutError(f"batches not finished after {timeout:.0f} s: {mine}")
            self.runtime.step()  # the spool bus (serve without emulators), and late lake objects
            time.sleep(0.5)

    def stop(self) -> None:
        from . import context

        if self.servers is not None:
            self.servers.stop()
        context.use(None)


def run_on_emulators(settings: Settings, files: list[tuple[Path, str]], *, progress=None, timeout: float = 1800.0,
                     faults: FaultPlan | None = None, emulators: Emulators | None = None, suffix: str = "") -> dict:
    """One whole run on the emulator chain; returns the same summary as pipeline.run_local.

    ``emulators``: running emulators to use (tests share one set); default: start them under
    ``HOME/emulators`` and stop them at the end (their data stays there for ``status``).
    """
    from .lake import batch_id_for
    from .status import collect

    say = progress or (lambda _m: None)
    own = emulators is None
    started = time.monotonic()
    if own:
        say("starting the GCS, Pub/Sub and BigQuery emulators")
        emulators = Emulators(settings.home / "emulators").start()
    chain_settings = emulator_settings(settings.home, suffix)
    chain = Chain(chain_settings, emulators, progress=say, faults=faults)
    try:
        chain.start()
        batch_ids = []
        for path, name in files:
            info = chain.ctx.landing.put(name, path, content_type=_content_type(path))
            batch_ids.append(batch_id_for(chain.ctx.landing.uri(name), info.generation))
            say(f"dropped {name} into {chain_settings.landing} (generation {info.generation})")
        chain.wait_for_batches(batch_ids, timeout)
        stats = chain.runtime.stats
        report = collect(chain.ctx)
    finally:
        chain.stop()
        if own:
            emulators.stop()
    mine = [b for b in report["batches"] if b["batch_id"] in batch_ids]
    ok = (not stats.dead_letters and len(mine) == len(batch_ids)
          and all(b["state"] in ("transformed", "superseded") for b in mine))
    seconds = {k: round(v, 2) for k, v in stats.seconds.items()}
    seconds["total"] = round(time.monotonic() - started, 2)
    return {**report, "batches": mine, "ok": ok, "seconds": seconds, "dead_letters": stats.dead_letters,
            "deliveries": dict(stats.deliveries), "subscription": chain.subscription}


def _content_type(path: Path) -> str:
    return {".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", ".csv": "text/csv",
            ".parquet": "application/vnd.apache.parquet"}.get(path.suffix.lower(), "application/octet-stream")


# -- replay ------------------------------------------------------------------------------------
def replay_batch(settings: Settings, batch_id: str, *, claim_key: str | None = None, messages_only: bool = False,
                 timeout: float = 900.0, say: Callable[[str], None] = lambda _m: None) -> dict:
    """Re-emit finalize events for the batch's lake objects (unless ``messages_only``) and re-publish a
    message with a fresh claim key; wait for the transform. Converges: loads answer already_loaded."""
    from . import context
    from .events import pubsub_published, storage_finalized
    from .ports import Message
    from .runtime import InProcessApps
    from .status import collect

    ctx = context.Context(settings)
    context.use(ctx)
    record = read_chain(settings.home) or {}
    servers = record.get("servers") or {}
    serving = bool(servers) and all(_reachable(u) for u in servers.values())
    if not serving:
        from .logs import log_to_file

        (settings.home / "logs").mkdir(parents=True, exist_ok=True)
        log_to_file(settings.home / "logs" / "pipeline.jsonl")  # the terminal is for the replay's own report
    apps = HttpApps(servers) if serving else InProcessApps()
    ledger_before = ctx.warehouse.status()["loads"].get(batch_id, {})
    key = claim_key or f"replay-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:4]}"
    loads = []
    if not messages_only:
        objects = [o for o in ctx.lake.list() if o.metadata.get("batch_id") == batch_id and not o.name.startswith("_")]
        if not objects:
            raise click.ClickException(f"no lake objects carry batch id {batch_id}")
        for info in objects:
            status, body = apps.deliver("load", storage_finalized(info))
            if status >= 300:
                raise click.ClickException(f"load of {info.name} failed (HTTP {status}): {body[-300:]}")
            loads.append({"object": info.name, "http_status": status})
            say(f"load {info.name}: delivered (HTTP {status})")
    payload = {"batch_id": batch_id, "replay": key}
    attributes = {"batch_id": batch_id, "replay": key, "kind": "replay"}
    message_id = ctx.bus.publish(json.dumps(payload).encode(), attributes)
    say(f"published replay message {message_id} (claim key {key})")
    pushed = serving and hasattr(ctx.bus, "ensure_push_subscription")
    if hasattr(ctx.bus, "pull"):
        LocalRuntime(ctx, apps, progress=say).run_until_idle(timeout=timeout)
    elif not pushed:  # nobody subscribed right now: deliver the message as the push subscription would
        message = Message(message_id, json.dumps(payload).encode(), attributes, datetime.now(timezone.utc))
        status, body = apps.deliver("transform", pubsub_published(message, ctx.bus.topic,
                                                                  f"projects/{PROJECT}/subscriptions/{SUBSCRIPTION}"))
        if status >= 300:
            raise click.ClickException(f"transform failed (HTTP {status}): {body[-300:]}")
    deadline = time.monotonic() + timeout
    while True:
        runs = [r for r in ctx.warehouse.status()["runs"] if r["batch_id"] == batch_id and r["claim_key"] == key]
        if runs and runs[-1]["state"] != "running":
            break
        if time.monotonic() > deadline:
            raise click.ClickException(f"the replay transform of {batch_id} did not finish in {timeout:.0f} s")
        time.sleep(0.5)
    report = collect(ctx)
    context.use(None)
    ledger_after = ctx.warehouse.status()["loads"].get(batch_id, {})
    return {"batch_id": batch_id, "claim_key": key, "loads": loads, "ledger_before": ledger_before,
            "ledger_after": ledger_after, "transform": runs[-1], "warehouse": report["warehouse"]}


# -- commands ----------------------------------------------------------------------------------
def environment_text(settings: Settings, emulators: Emulators | None, servers: FunctionServers) -> str:
    """What a user pastes into another shell to reach this chain."""
    lines = ["# functions (binary-mode CloudEvents):"]
    lines += [f"#   {t}: {u}" for t, u in servers.urls.items()]
    if emulators is not None:
        lines.append("# environment for the Python clients, dbt and gcloud:")
        lines += [f"export {k}={v}" for k, v in emulators.env().items()]
        lines += [
            f"# bq:     bq --api {emulators.bq_url} --project_id {emulators.project} ls",
            f"# upload: retail-pipeline --home {settings.home} drop book.xlsx   (or the Python client:",
            f"#         storage.Client(credentials=AnonymousCredentials()).bucket('{settings.landing[5:]}')"
            ".blob('book.xlsx').upload_from_filename('book.xlsx'))",
            "# gsutil cannot reach the GCS emulator (it speaks HTTPS to storage.googleapis.com's JSON API);",
            "# `gcloud storage ls` works with the override above, `gcloud storage cp` does not (multipart upload).",
        ]
    lines.append(f"# landing {settings.landing}  lake {settings.lake}  warehouse {settings.warehouse}  bus {settings.bus}")
    return "\n".join(lines)


@click.command()
@click.option("--emulators", "use_emulators", is_flag=True,
              help="Start the GCS, Pub/Sub and BigQuery emulators and run the chain on them.")
@click.option("--poll", type=float, default=0.5, show_default=True, help="Seconds between bucket polls.")
@click.pass_obj
def serve(settings: Settings, use_emulators: bool, poll: float) -> None:
    """Run the three functions as HTTP servers and play Eventarc/Pub/Sub until Ctrl-C."""
    emulators = None
    if use_emulators:
        emulators = Emulators(settings.home / "emulators")
        try:
            emulators.start()
        except EmulatorError as exc:
            raise click.ClickException(str(exc))
        settings = emulator_settings(settings.home)
    say = lambda m: click.echo(f"  {time.strftime('%H:%M:%S')} {m}", err=True)  # noqa: E731
    chain = Chain(settings, emulators, progress=say)
    stop = {"now": False}

    def _stop(*_args) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    try:
        chain.start()
        click.echo(environment_text(settings, emulators, chain.servers))
        click.echo("serving; Ctrl-C stops", err=True)
        while not stop["now"]:
            if not chain.runtime.step():
                time.sleep(poll)
    except KeyboardInterrupt:
        pass
    finally:
        chain.stop()
        if emulators is not None:
            emulators.stop()
        click.echo("stopped", err=True)


@click.command()
@click.argument("batch_id")
@click.option("--claim-key", help="Claim key of the new transform run (default: replay-<time>).")
@click.option("--messages-only", is_flag=True, help="Only re-publish the message; do not re-emit lake events.")
@click.option("--timeout", type=float, default=900, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def replay(settings: Settings, batch_id: str, claim_key: str | None, messages_only: bool, timeout: float,
           as_json: bool) -> None:
    """Replay BATCH_ID: re-emit its lake objects' finalize events and re-publish its message."""
    say = (lambda _m: None) if as_json else (lambda m: click.echo(f"  {m}", err=True))
    result = replay_batch(settings, batch_id, claim_key=claim_key, messages_only=messages_only, timeout=timeout,
                          say=say)
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
        return
    run, w = result["transform"], result["warehouse"]
    same = "unchanged" if result["ledger_before"] == result["ledger_after"] else "CHANGED"
    click.echo(f"replayed {batch_id} as {result['claim_key']}: {len(result['loads'])} lake objects re-delivered "
               f"(load ledger {same}); transform {run['state']}, tests passed {run['tests_passed']}, "
               f"failed {run['tests_failed']}")
    click.echo(f"warehouse: {w['fact_rows']:,} fact rows, net amount {w['net_amount']}")
