"""Build the offline dashboard: one self-contained HTML file (styles, script and data inlined)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from ..analytics import Analytics, AnalyticsError
from ..config import Settings
from . import queries
from .page_json import script_json


class DashboardError(RuntimeError):
    """The dashboard cannot be built (no warehouse, or the marts are not there yet)."""


def dashboard_path(settings: Settings) -> Path:
    """Where the dashboard of this home lives: HOME/dashboard/index.html."""
    return settings.home / "dashboard" / "index.html"


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath("assets", name).read_text(encoding="utf-8")


def collect_data(source: Analytics) -> dict:
    """Read the marts the page shows (never the fact), from whichever warehouse ``source`` reads."""
    try:
        return queries.collect(source)
    except AnalyticsError as exc:
        raise DashboardError(str(exc)) from exc


def render(data: dict) -> str:
    """The HTML page for the data (what ``collect_data`` gives, plus JSON values): the template with
    styles, script and data inlined."""
    page = _asset("index.html")
    for marker, content in (
        ("/*__STYLE__*/", _asset("dashboard.css")),
        ("/*__SCRIPT__*/", _asset("dashboard.js")),
        ("/*__DATA__*/", script_json(data)),
    ):
        if page.count(marker) != 1:
            raise DashboardError(f"template index.html must hold {marker} exactly once")
        page = page.replace(marker, content)
    return page


def build_dashboard(settings: Settings, out: Path | None = None, *, source: Analytics | None = None) -> Path:
    """Write the dashboard of the settings' warehouse (DuckDB or BigQuery) to ``out`` (default
    HOME/dashboard/index.html); ``source`` reads another analytics layer instead."""
    source = source or Analytics.open(settings)
    data = collect_data(source)
    data["generated_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    # freshness: the newest ingest the marts count (status says the same: "data as of ...")
    data["data_as_of"] = max(
        (q["ingested_at"] for q in data.get("quality", []) if q.get("state") == "ingested" and q.get("ingested_at")),
        default=None,
    )
    data["warehouse"] = source.label
    target = out or dashboard_path(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    html = render(data)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(html, encoding="utf-8")
        os.replace(tmp, target)  # a reader never sees half a page
    finally:
        tmp.unlink(missing_ok=True)
    return target
