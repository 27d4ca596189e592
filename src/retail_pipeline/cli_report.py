"""CLI: `retail-pipeline report` (the Excel report) and `retail-pipeline marts` (what the marts are)."""

from __future__ import annotations

import time
from pathlib import Path

import click


@click.command()
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--month",
    metavar="YYYY-MM",
    help="The report month (default: the latest month with data); the summary compares it with the month before.",
)
@click.option(
    "--lines",
    type=click.Choice(["none", "month", "all"]),
    default="none",
    show_default=True,
    help="Add the fact lines of the month, or of every month (streamed, one month at a time).",
)
@click.pass_context
def report(click_ctx: click.Context, out: Path, month: str | None, lines: str) -> None:
    """Write the Excel report: a summary with charts, one sheet per mart (DuckDB or BigQuery)."""
    from .cli import recorded_chain
    from .report import ReportError, write_report

    settings = recorded_chain(click_ctx, click_ctx.obj)
    started = time.monotonic()
    try:
        result = write_report(
            out, month=month, lines=lines, settings=settings, progress=lambda m: click.echo(f"  {m}", err=True)
        )
    except (ReportError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    rows = sum(result.sheets.values())
    click.echo(
        f"wrote {out} ({result.month} against {result.previous}; {len(result.sheets) + 1} sheets, "
        f"{rows:,} rows, {out.stat().st_size:,} bytes) in {time.monotonic() - started:.1f} s"
    )


@click.command()
@click.argument("name", required=False)
@click.option(
    "--csv",
    "csv_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the mart's rows to this CSV file (money as exact decimals).",
)
@click.pass_context
def marts(click_ctx: click.Context, name: str | None, csv_out: Path | None) -> None:
    """List the marts and their grain; with NAME, the mart's columns and row count (and --csv its rows)."""
    from . import analytics

    if name is None:
        if csv_out is not None:
            raise click.UsageError("--csv needs a mart NAME")
        for found in analytics.marts():
            click.echo(f"{found.name}: {found.grain}")
        return
    from .cli import recorded_chain

    settings = recorded_chain(click_ctx, click_ctx.obj)
    try:
        found = analytics.mart(name)
        frame = analytics.read_mart(name, settings=settings)
    except analytics.AnalyticsError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{found.name}: {found.grain} ({len(frame):,} rows)")
    for column, description in found.columns.items():
        click.echo(f"  {column}: {description}")
    if csv_out is not None:
        frame.to_csv(csv_out, index=False)
        click.echo(f"wrote {csv_out}")
