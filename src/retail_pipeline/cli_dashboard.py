"""CLI: `retail-pipeline dashboard` (offline HTML) and `retail-pipeline looker-url` (Looker Studio link)."""

from __future__ import annotations

import time
import webbrowser
from pathlib import Path

import click

from .config import Settings


@click.command()
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the page (default: HOME/dashboard/index.html).",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the default web browser.")
@click.pass_context
def dashboard(click_ctx: click.Context, out: Path | None, open_browser: bool) -> None:
    """Build the offline HTML dashboard from the marts (one self-contained file; works without network)."""
    from .cli import recorded_chain
    from .dashboard import DashboardError, build_dashboard

    settings = recorded_chain(click_ctx, click_ctx.obj)
    started = time.monotonic()
    try:
        path = build_dashboard(settings, out)
    except DashboardError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {path} ({path.stat().st_size:,} bytes) in {time.monotonic() - started:.2f} s")
    if open_browser and not webbrowser.open(path.resolve().as_uri()):
        raise click.ClickException(f"no web browser could be started; open {path.resolve().as_uri()} yourself")


def _from_warehouse_url(settings: Settings) -> tuple[str | None, str | None]:
    """Project and analytics dataset implied by a bigquery://PROJECT/PREFIX warehouse setting."""
    target = settings.warehouse_url
    if target.kind != "bigquery":
        return None, None
    return target.project, target.analytics_dataset


@click.command("looker-url")
@click.option(
    "--project",
    envvar="RETAIL_PIPELINE_GCP_PROJECT",
    show_envvar=True,
    help="Google Cloud project of the BigQuery marts (default: from RETAIL_PIPELINE_WAREHOUSE=bigquery://…).",
)
@click.option(
    "--dataset",
    envvar="RETAIL_PIPELINE_ANALYTICS_DATASET",
    show_envvar=True,
    help="BigQuery dataset of the marts, Terraform's datasets.analytics (default: PREFIX_analytics "
    "from RETAIL_PIPELINE_WAREHOUSE).",
)
@click.option(
    "--report-name",
    envvar="RETAIL_PIPELINE_LOOKER_REPORT_NAME",
    show_envvar=True,
    default="Online Retail sales",
    show_default=True,
    help="Name of the report the link creates.",
)
@click.pass_obj
def looker_url(settings: Settings, project: str | None, dataset: str | None, report_name: str) -> None:
    """Print the Looker Studio Linking API URL: a new report with one BigQuery data source per mart."""
    from .dashboard import looker_studio_url

    default_project, default_dataset = _from_warehouse_url(settings)
    project, dataset = project or default_project, dataset or default_dataset
    if not project or not dataset:
        raise click.ClickException(
            "say where the marts are: --project and --dataset (or RETAIL_PIPELINE_GCP_PROJECT "
            "and RETAIL_PIPELINE_ANALYTICS_DATASET, or RETAIL_PIPELINE_WAREHOUSE=bigquery://PROJECT/PREFIX)"
        )
    click.echo(looker_studio_url(project, dataset, report_name))
