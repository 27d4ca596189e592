"""retail-pipeline: the command line on top of the shared package."""

from __future__ import annotations

import signal
from pathlib import Path

import click

from .config import Settings


@click.group()
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="RETAIL_PIPELINE_HOME",
    default=".retail",
    show_default=True,
    help="Folder for all local state (buckets, DuckDB, logs).",
)
@click.pass_context
def cli(ctx: click.Context, home: Path) -> None:
    """Event-driven retail sales pipeline: workbook in, tested marts out."""
    try:
        ctx.obj = Settings.from_env(home)  # the one place configuration enters the command line
    except ValueError as exc:
        raise click.ClickException(f"bad setting: {exc}") from exc


def recorded_chain(click_ctx: click.Context, settings: Settings) -> Settings:
    """The settings of the chain this home used last (``status`` and ``drop`` follow it), starting
    an emulator home's storage and BigQuery emulators for this command when they are not running."""
    from .chain import ChainError, recorded_settings

    try:
        recorded = recorded_settings(settings, start_emulators=True)
    except ChainError as exc:
        raise click.ClickException(str(exc)) from exc
    if recorded.emulators is not None:
        click_ctx.call_on_close(recorded.emulators.stop)
    return recorded.settings


from .cli_run import drop, ingest, render_summary, run, sample  # noqa: E402

cli.add_command(sample)
cli.add_command(drop)
cli.add_command(ingest)
cli.add_command(run)

from .cli_status import schema, status  # noqa: E402

cli.add_command(status)
cli.add_command(schema)

from .cli_dashboard import dashboard, looker_url  # noqa: E402

cli.add_command(dashboard)
cli.add_command(looker_url)

from .cli_serve import replay, serve  # noqa: E402

cli.add_command(serve)
cli.add_command(replay)

from .cli_ops import reprocess, retract, sweep  # noqa: E402

cli.add_command(sweep)
cli.add_command(retract)
cli.add_command(reprocess)

from .cli_docs import docs  # noqa: E402

cli.add_command(docs)

from .cli_bench import bench  # noqa: E402

cli.add_command(bench)

from .cli_report import marts, report  # noqa: E402

cli.add_command(report)
cli.add_command(marts)


__all__ = ["cli", "main", "recorded_chain", "render_summary"]


def _stopped(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    # a command stopped with SIGTERM (`kill`, `timeout`) cleans up as one stopped with Ctrl-C does:
    # the emulators, function servers and job executions it started stop with it (`serve` has its own)
    signal.signal(signal.SIGTERM, _stopped)
    try:
        cli(prog_name="retail-pipeline")
    except SystemExit as exc:
        _exit_now(exc)


def _exit_now(exc: SystemExit) -> None:
    """End the console script as the interpreter would, without tearing down its imports (pandas,
    pyarrow, DuckDB, flask: about 0.4 s of every command's exit; for ``ingest``, freeing the parse
    buffers). Everything a command writes is closed by then; the atexit handlers stop the dbt
    worker, fork servers and emulators. Under a test runner (``cli`` called directly) the
    interpreter's own exit applies."""
    from .process_exit import exit_code, exit_now

    exit_now(exit_code(exc.code))


if __name__ == "__main__":
    main()
