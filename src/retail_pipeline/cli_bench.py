"""`retail-pipeline bench`: the click command over the bench harness (the retail_bench package).

The harness lives outside this package so the function zips carry none of it; it is imported
only when the command runs. Method and figures: docs/benchmarks.md.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from .config import Settings


@click.command()
@click.argument("workbook", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--runs",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="Rounds of ingest and the fastexcel reads (0: skip the reader comparison).",
)
@click.option(
    "--pandas-runs",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Rounds that also run the pandas baseline (about 36 s each on the reference workbook).",
)
@click.option(
    "--variants",
    default=None,
    help="Reader variants in each round, comma-separated, out of ingest, fastexcel, fastexcel-eager, "
    "pandas-openpyxl, cli-startup (default: all; 'ingest,fastexcel' alternates the two).",
)
@click.option(
    "--e2e-runs",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="End-to-end `retail-pipeline run` timings of WORKBOOK (embedded chain, dbt).",
)
@click.option(
    "--scale",
    type=click.IntRange(min=0),
    default=0,
    help="Also run the scale procedure with this many generated datasets (10 = the 10x check; minutes).",
)
@click.option(
    "--scale-rows",
    type=click.IntRange(min=1),
    default=541_909,
    show_default=True,
    help="Rows of each generated dataset for --scale.",
)
@click.option(
    "--work",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the generated scale datasets (kept for reuse; default HOME/bench/scale).",
)
@click.option(
    "--baselines",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Folder holding the baseline scripts (default: the repository's benchmarks/).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="JSON report path (default HOME/bench/bench-<time>.json).",
)
@click.option("--timeout", type=float, default=1800, show_default=True, help="Seconds allowed per process.")
@click.pass_obj
def bench(
    settings: Settings,
    workbook: Path | None,
    runs: int,
    pandas_runs: int,
    variants: str | None,
    e2e_runs: int,
    scale: int,
    scale_rows: int,
    work: Path | None,
    baselines: Path | None,
    out: Path | None,
    timeout: float,
) -> None:
    """Time ingest against the plain fastexcel read and the pandas baseline; print a table, write JSON.

    WORKBOOK defaults to the reference workbook (../shared/data/online_retail_reference.xlsx).
    """
    from retail_bench.harness import DEFAULT_BASELINES, DEFAULT_WORKBOOK, VARIANTS, BenchPlan, run_bench, write_report
    from retail_bench.render import render
    from retail_bench.runs import BenchError

    plan = BenchPlan(
        workbook=workbook or DEFAULT_WORKBOOK,
        runs=runs,
        pandas_runs=pandas_runs,
        e2e_runs=e2e_runs,
        scale=scale,
        scale_rows=scale_rows,
        work=work or settings.home / "bench" / "scale",
        baselines=baselines or DEFAULT_BASELINES,
        timeout=timeout,
        variants=tuple(v.strip() for v in variants.split(",") if v.strip()) if variants else VARIANTS,
    )
    try:
        report = run_bench(plan, say=lambda message: click.echo(message, err=True))
    except BenchError as exc:
        raise click.ClickException(str(exc)) from exc
    started = datetime.fromisoformat(report["date"])
    out = out or settings.home / "bench" / f"bench-{started.strftime('%Y%m%d-%H%M%S')}.json"
    write_report(report, out)
    click.echo(render(report))
    click.echo(f"wrote {out}")
