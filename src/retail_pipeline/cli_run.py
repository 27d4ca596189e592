"""The commands that make and move data: ``sample``, ``drop``, ``ingest`` and ``run`` (with the summary
``run`` prints)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from .config import Settings
from .paths import shown


def _echo_progress(message: str) -> None:
    click.echo(f"  {time.strftime('%H:%M:%S')} {message}", err=True)


@click.command()
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--rows", type=click.IntRange(min=1), default=20_000, show_default=True, help="Data rows to write.")
@click.option(
    "--variant",
    type=click.Choice(["online-retail", "online-retail-ii"]),
    default="online-retail",
    show_default=True,
    help="Header spelling and sheet layout of the original or the II release.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed: same seed, same file.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["xlsx", "csv", "csv.gz", "parquet"]),
    default=None,
    help="Output format (default: from OUT's extension).",
)
def sample(out: Path, rows: int, variant: str, seed: int, fmt: str | None) -> None:
    """Write a deterministic, realistic Online Retail workbook (or CSV/Parquet) to OUT."""
    from .sample import write_sample

    started = time.monotonic()
    stats = write_sample(out, rows=rows, variant=variant, seed=seed, fmt=fmt)
    click.echo(
        f"wrote {out} ({stats['rows']:,} rows, {stats['sheets']} sheet(s), {out.stat().st_size:,} bytes) "
        f"in {time.monotonic() - started:.1f} s"
    )


@click.command()
@click.argument("workbook", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", help="Object name in the landing bucket (default: the file's name).")
@click.pass_context
def drop(click_ctx: click.Context, workbook: Path, name: str | None) -> None:
    """Upload WORKBOOK into the landing bucket (a folder, or gs://)."""
    from .adapters import open_store
    from .cli import recorded_chain
    from .media import content_type_for

    settings = recorded_chain(click_ctx, click_ctx.obj)
    store = open_store(settings.landing, settings)
    try:
        info = store.put(name or workbook.name, workbook, content_type=content_type_for(workbook))
    except (ValueError, OSError) as exc:
        raise click.ClickException(f"cannot drop {workbook} as {name or workbook.name!r}: {exc}") from exc
    click.echo(f"{shown(store.uri(info.name))} generation {info.generation} ({info.size:,} bytes)")


@click.command()
@click.argument("workbook", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--lake",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder to write the lake objects into.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
@click.pass_obj
def ingest(settings: Settings, workbook: Path, lake: Path, as_json: bool) -> None:
    """Run the ingest step alone on a local file; writes exactly what the ingest function writes."""
    from .adapters import open_store
    from .ingest import ingest_object

    path = workbook.resolve()
    result = ingest_object(
        path,
        path.name,
        path.as_uri(),
        path.stat().st_mtime_ns // 1000,
        open_store(str(lake), settings),
        settings.limits,
        progress=None if as_json else _echo_progress,
        faults=settings.faults,
    )
    if as_json:
        click.echo(json.dumps(result.manifest(), indent=2))
    else:
        click.echo(
            f"batch {result.batch_id}: {result.state}"
            + (f" ({result.error})" if result.error else "")
            + f"; read {result.rows_read:,}, loaded {result.rows_loaded:,}, quarantined "
            f"{result.rows_quarantined:,}, duplicates {result.rows_duplicate:,}; "
            f"{len(result.partitions)} partitions in {result.seconds:.2f} s"
        )
    if result.state == "rejected":
        sys.exit(1)


@click.command()
@click.argument(
    "workbooks", metavar="[WORKBOOK]...", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--rows",
    type=click.IntRange(min=1),
    default=20_000,
    show_default=True,
    help="Rows of the generated sample when no WORKBOOK is given.",
)
@click.option("--name", help="Object name in the landing bucket (default: the file's name).")
@click.option("--timeout", type=float, default=1800, show_default=True, help="Seconds to wait for the chain.")
@click.option(
    "--emulators",
    "use_emulators",
    is_flag=True,
    help="Run on the GCS, Pub/Sub and BigQuery emulators with the functions over HTTP.",
)
@click.option(
    "--faults",
    "fault_spec",
    metavar="SPEC",
    default="",
    help="Fault injection for testing: copies=N (deliver each event 1..N times), shuffle, delay=P, "
    "seed=N, crash=POINT+POINT (ingest.start, ingest.partition, load.start, load.publish, "
    "transform.start fail on their first attempt).",
)
@click.pass_obj
def run(
    settings: Settings,
    workbooks: tuple[Path, ...],
    rows: int,
    name: str | None,
    timeout: float,
    use_emulators: bool,
    fault_spec: str,
) -> None:
    """Drop each WORKBOOK (default: a generated sample) and run ingest → load → transform on the embedded chain."""
    from .pipeline import run_local

    if name and len(workbooks) > 1:
        raise click.BadParameter("--name names one WORKBOOK; several were given", param_hint="--name")
    if not workbooks:
        from .sample import write_sample

        workbook = settings.home / "samples" / f"online_retail_sample_{rows}.xlsx"
        if not workbook.exists():
            workbook.parent.mkdir(parents=True, exist_ok=True)
            _echo_progress(f"generating a {rows:,}-row sample workbook at {shown(workbook)}")
            write_sample(workbook, rows=rows, variant="online-retail", seed=0)
        workbooks = (workbook,)
    files = [(workbook, name or workbook.name) for workbook in workbooks]
    from .faults import FaultPlan

    try:
        plan = FaultPlan.parse(fault_spec) if fault_spec else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--faults") from exc
    if use_emulators:
        from .chain import run_on_emulators

        summary = run_on_emulators(settings, files, progress=_echo_progress, timeout=timeout, faults=plan)
    else:
        summary = run_local(settings, files, progress=_echo_progress, timeout=timeout, faults=plan)
    click.echo(render_summary(summary))
    if not summary["ok"]:
        sys.exit(1)


def _count(value: int | None, width: int = 0) -> str:
    """A row count with thousands separators; '-' where it is not known (a superseded generation)."""
    return (f"{value:,}" if value is not None else "-").rjust(width)


def render_summary(summary: dict) -> str:
    lines = []
    for b in summary["batches"]:
        r = b["rows"]
        lines.append(f"batch {b['batch_id']} ({shown(b['source'])}): {b['state']}")
        if b.get("error"):
            text = b["error"].strip()
            first = text.splitlines()[0][:300]
            more = "" if first == text else " ...  (full text: retail-pipeline status --json)"
            lines.append(f"  error: {first}{more}")
        lines.append(
            f"  rows read {_count(r['read'])}  loaded {_count(r['loaded'])}  quarantined "
            f"{_count(r['quarantined'])}  duplicates {_count(r['duplicates'])}"
        )
    w, d = summary["warehouse"], summary["dbt"]
    lines.append(f"warehouse: {w['fact_rows']:,} fact rows, net amount {w['net_amount']}")
    lines.append(f"dbt: {d['status']}, tests passed {d['tests_passed']}, failed {d['tests_failed']}")
    lines.append("seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in summary["seconds"].items()))
    for dead in summary.get("dead_letters", []):
        lines.append(f"FAILED {dead['target']} {dead['subject']}: {dead['error']}")
    return "\n".join(lines)
