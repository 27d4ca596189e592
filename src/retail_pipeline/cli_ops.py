"""The operations commands: ``sweep``, ``retract`` and ``reprocess`` (logic in sweep.py, retract.py).

Each acts on the chain the home used last. When no ``serve`` of the home is running, the work it
starts (rewritten objects, published messages) is driven here until idle on the embedded chain;
an emulator home's work waits for ``serve --emulators``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime

import click

from . import context
from .config import Settings


@contextmanager
def _chain(settings: Settings) -> Iterator[tuple[context.Context, bool]]:
    """(the context of the home's chain, whether a `serve` of it is running)."""
    from .chain import ChainError, recorded_settings
    from .servers import reachable

    try:
        recorded = recorded_settings(settings, start_emulators=True, with_pubsub=True)
    except ChainError as exc:
        raise click.ClickException(str(exc)) from exc
    ctx = context.Context(recorded.settings)
    context.use(ctx)
    try:
        serving = bool(recorded.servers) and all(reachable(u) for u in recorded.servers.values())
        yield ctx, serving
    finally:
        context.use(None)
        if recorded.emulators is not None:
            recorded.emulators.stop()


def drive(ctx: context.Context, serving: bool, say: Callable[[str], None], timeout: float = 1800.0) -> None:
    """Deliver the events and messages the command caused, when nothing else will."""
    if serving:
        say("a serve of this home is running: it delivers the events")
        return
    if ctx.settings.bus_url.kind != "local":
        say("start `retail-pipeline serve --emulators` on this home to deliver the events")
        return
    from .logs import log_to_file
    from .pipeline import SUBSCRIPTION
    from .runtime import InProcessApps, LocalRuntime

    (ctx.settings.home / "logs").mkdir(parents=True, exist_ok=True)
    log_to_file(ctx.settings.home / "logs" / "pipeline.jsonl")
    LocalRuntime(ctx, InProcessApps(), subscription=ctx.bus.subscribe(SUBSCRIPTION), progress=say).run_until_idle(
        timeout=timeout
    )


def _say(quiet: bool) -> Callable[[str], None]:
    return (lambda _m: None) if quiet else (lambda m: click.echo(f"  {m}", err=True))


@click.command()
@click.option("--dry-run", is_flag=True, help="Only report what is missing or stuck; change nothing.")
@click.option(
    "--grace",
    type=click.IntRange(min=0),
    default=None,
    help="Seconds to leave alone (default: the sweep_grace_seconds setting, 900).",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def sweep(settings: Settings, dry_run: bool, grace: int | None, as_json: bool) -> None:
    """Re-drive whatever the events missed: landing objects, lake objects, batches, stuck runs."""
    from .sweep import render
    from .sweep import sweep as run_sweep

    with _chain(settings) as (ctx, serving):
        report = run_sweep(ctx, grace_seconds=grace, dry_run=dry_run)
        if report.redriven:
            drive(ctx, serving, _say(as_json))
    click.echo(json.dumps(report.as_dict(), indent=2) if as_json else render(report))


@click.command()
@click.argument("target", metavar="SOURCE_URI|BATCH_ID")
@click.option("--why", default="", help="Why (kept in the audit row).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def retract(settings: Settings, target: str, why: str, as_json: bool) -> None:
    """Remove a source's rows (every generation) from the warehouse, rebuild the months it touched."""
    from .retract import retract as run_retract

    with _chain(settings) as (ctx, _serving):
        try:
            outcome = run_retract(ctx, target, why=why)
        except LookupError as exc:
            raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(outcome, indent=2, default=str))
        return
    if not outcome["batch_ids"]:
        click.echo(f"{target}: already retracted; nothing removed")
        return
    run = outcome["transform"] or {}
    click.echo(
        f"retracted {len(outcome['batch_ids'])} batch(es) of {', '.join(outcome['source_uris'])}: "
        f"{outcome['rows_removed']:,} lines and {outcome['quarantine_removed']:,} quarantined rows removed; "
        f"lake files kept"
    )
    click.echo(
        f"rebuilt months {', '.join(outcome['partitions']) or '(none)'}: dbt {run.get('status')}, "
        f"tests failed {run.get('tests_failed')}"
    )
    if run.get("status") not in ("success", "started"):
        raise SystemExit(1)


@click.command()
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Only landing objects written on or after this day (YYYY-MM-DD).",
)
@click.option("--source", "pattern", default=None, help="Only objects whose name or URI matches this glob.")
@click.option("--dry-run", is_flag=True, help="Only list what would be re-ingested.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def reprocess(settings: Settings, since: datetime | None, pattern: str | None, dry_run: bool, as_json: bool) -> None:
    """Re-ingest landing objects with today's rules, as new batches that supersede the old ones."""
    from .retract import reprocess as run_reprocess

    since_day: date | None = since.date() if since else None
    with _chain(settings) as (ctx, serving):
        done = run_reprocess(ctx, since=since_day, source=pattern, dry_run=dry_run)
        if done and not dry_run:
            drive(ctx, serving, _say(as_json))
    if as_json:
        click.echo(json.dumps(done, indent=2))
        return
    for item in done:
        click.echo(f"{item['object']}: generation {item['old_generation']} → {item['new_generation'] or '(dry run)'}")
    click.echo(f"{len(done)} landing object(s) {'would be ' if dry_run else ''}re-ingested")
