"""The read-only commands: ``status`` (batches, warehouse, dbt, attention) and ``schema``."""

from __future__ import annotations

import json
import sys

import click

from .cli_run import _count
from .paths import shown


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--check",
    is_flag=True,
    help="Exit 1 when anything needs attention (dead letters, stuck batches, "
    "failed runs, rejected files), 0 on a healthy home: for cron.",
)
@click.pass_context
def status(click_ctx: click.Context, as_json: bool, check: bool) -> None:
    """Batches, warehouse figures, the last dbt run, and what needs attention."""
    from .cli import recorded_chain
    from .context import Context
    from .health import as_dicts, attention, render
    from .status import collect

    ctx = Context(recorded_chain(click_ctx, click_ctx.obj))
    report = collect(ctx)
    items = attention(ctx, report)
    report["attention"] = as_dicts(items)
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
    else:
        for b in report["batches"]:
            r = b["rows"]
            click.echo(
                f"{b['batch_id']}  {b['state']:<16} read {_count(r['read'], 9)}  loaded {_count(r['loaded'], 9)}  "
                f"quarantined {_count(r['quarantined'], 7)}  duplicates {_count(r['duplicates'], 7)}  {shown(b['source'])}"
                + (f"\n    {b['error']}" if b["error"] else "")
            )
        w, d = report["warehouse"], report["dbt"]
        click.echo(
            f"warehouse: {w['fact_rows']:,} fact rows, net amount {w['net_amount']}"
            + (f"; data as of {report['data_as_of']}" if report.get("data_as_of") else "")
        )
        click.echo(
            f"dbt: {d['status']}, tests passed {d['tests_passed']}, failed {d['tests_failed']} ({d['runs']} runs)"
        )
        click.echo(render(items))
    if check and items:
        sys.exit(1)


@click.command()
@click.argument("what", type=click.Choice(["bigquery-json", "dbt-sources", "arrow"]))
@click.option(
    "--table",
    type=click.Choice(["sales_lines", "quarantine", "batches", "load_ledger", "transform_runs", "retractions"]),
    default="sales_lines",
    show_default=True,
)
def schema(what: str, table: str) -> None:
    """Print a schema generated from the single definition (BigQuery JSON, dbt sources, Arrow)."""
    from . import schema as s

    if what == "bigquery-json":
        click.echo(s.bigquery_json_text(table), nl=False)
    elif what == "dbt-sources":
        click.echo(s.dbt_sources_yaml(), nl=False)
    else:
        click.echo(str(s.arrow_schema(table)))
