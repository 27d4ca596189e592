"""The commands of the long-running local chain: ``serve`` and ``replay`` (logic in chain.py, replay.py).

- ``serve [--emulators]``: the three functions as functions-framework servers on localhost; a
  dispatcher plays Eventarc (polls the landing and lake buckets for new generations, POSTs
  binary-mode CloudEvents). Messages reach the transform server by a Pub/Sub push subscription
  (emulator) or from the spool bus (embedded). Ctrl-C stops everything it started.
- ``replay BATCH_ID``: re-emit finalize events for the batch's lake objects and re-publish a
  message with a fresh claim key, so the batch is re-loaded (a no-op by the ledger) and re-transformed.
"""

from __future__ import annotations

import json
import signal
import time
from typing import TYPE_CHECKING

import click

from .config import Settings

if TYPE_CHECKING:  # the chain and what it imports load when a command here runs, not with every command
    from .emulators import Emulators
    from .servers import FunctionServers


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
            f"#         storage.Client(credentials=AnonymousCredentials()).bucket('{settings.landing_url.bucket}')"
            ".blob('book.xlsx').upload_from_filename('book.xlsx'))",
            "# gsutil cannot reach the GCS emulator (it speaks HTTPS to storage.googleapis.com's JSON API);",
            "# `gcloud storage ls` works with the override above, `gcloud storage cp` does not (multipart upload).",
        ]
    lines.append(
        f"# landing {settings.landing}  lake {settings.lake}  warehouse {settings.warehouse}  bus {settings.bus}"
    )
    return "\n".join(lines)


@click.command()
@click.option(
    "--emulators",
    "use_emulators",
    is_flag=True,
    help="Start the GCS, Pub/Sub and BigQuery emulators and run the chain on them.",
)
@click.option("--poll", type=float, default=0.5, show_default=True, help="Seconds between bucket polls.")
@click.option(
    "--sweep-every",
    type=float,
    default=3600,
    show_default=True,
    help="Seconds between sweeps (one also runs at start); 0 sweeps only at start.",
)
@click.pass_obj
def serve(settings: Settings, use_emulators: bool, poll: float, sweep_every: float) -> None:
    """Run the three functions as HTTP servers and play Eventarc/Pub/Sub until Ctrl-C."""
    from .chain import Chain, emulator_settings
    from .emulators import EmulatorError, Emulators

    emulators = None
    if use_emulators:
        emulators = Emulators(settings.home / "emulators")
        try:
            emulators.start()
        except EmulatorError as exc:
            raise click.ClickException(str(exc)) from exc
        settings = emulator_settings(settings.home, emulators, base=settings)
    say = lambda m: click.echo(f"  {time.strftime('%H:%M:%S')} {m}", err=True)  # noqa: E731
    chain = Chain(settings, emulators, progress=say)
    stop = {"now": False}

    def _stop(*_args) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    try:
        chain.start()
        assert chain.runtime is not None and chain.servers is not None
        click.echo(environment_text(chain.settings, emulators, chain.servers))
        click.echo("serving; Ctrl-C stops", err=True)
        from .sweep import sweep

        grace: int | None = 0  # at start nothing is in flight: what is missing was missed
        next_sweep: float | None = time.monotonic()
        while not stop["now"]:
            if next_sweep is not None and time.monotonic() >= next_sweep:
                for finding in sweep(chain.ctx, grace_seconds=grace, run_timeout_seconds=grace).redriven:
                    say(f"sweep: {finding.kind} {finding.subject} → {finding.action}")
                grace, next_sweep = None, (time.monotonic() + sweep_every if sweep_every > 0 else None)
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
def replay(
    settings: Settings, batch_id: str, claim_key: str | None, messages_only: bool, timeout: float, as_json: bool
) -> None:
    """Replay BATCH_ID: re-emit its lake objects' finalize events and re-publish its message."""
    from .chain import ChainError, recorded_settings
    from .replay import ReplayError, replay_batch

    say = (lambda _m: None) if as_json else (lambda m: click.echo(f"  {m}", err=True))
    try:
        recorded = recorded_settings(settings, start_emulators=True, with_pubsub=True)
    except ChainError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        result = replay_batch(
            recorded, batch_id, claim_key=claim_key, messages_only=messages_only, timeout=timeout, say=say
        )
    except ReplayError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        if recorded.emulators is not None:
            recorded.emulators.stop()
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
        return
    run, w = result["transform"], result["warehouse"]
    same = "unchanged" if result["ledger_before"] == result["ledger_after"] else "CHANGED"
    click.echo(
        f"replayed {batch_id} as {result['claim_key']}: {len(result['loads'])} lake objects re-delivered "
        f"(load ledger {same}); transform {run['state']}, tests passed {run['tests_passed']}, "
        f"failed {run['tests_failed']}"
    )
    click.echo(f"warehouse: {w['fact_rows']:,} fact rows, net amount {w['net_amount']}")
