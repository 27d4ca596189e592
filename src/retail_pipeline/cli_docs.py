"""`retail-pipeline docs`: the dbt docs site (lineage graph, definitions) built offline."""

from __future__ import annotations

from pathlib import Path

import click

from .config import Settings


@click.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the site (default: HOME/docs).",
)
@click.pass_obj
def docs(settings: Settings, out_dir: Path | None) -> None:
    """Build the dbt docs site for the marts into HOME/docs (offline; open static_index.html)."""
    from .transform import generate_docs

    try:
        site = generate_docs(settings, out_dir or settings.home / "docs")
    except (RuntimeError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"dbt docs: {site}")
