"""Build the offline dashboard: one self-contained HTML file (styles, script and data inlined)."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

import duckdb

from ..config import Settings
from . import queries


class DashboardError(RuntimeError):
    """The dashboard cannot be built (no DuckDB warehouse, or the marts are not there yet)."""


def dashboard_path(settings: Settings) -> Path:
    """Where the dashboard of this home lives: HOME/dashboard/index.html."""
    return settings.home / "dashboard" / "index.html"


def warehouse_file(settings: Settings) -> Path:
    """The DuckDB file of the settings' warehouse; the dashboard reads only the embedded warehouse."""
    if not settings.warehouse.startswith("duckdb://"):
        raise DashboardError(f"the offline dashboard reads a DuckDB warehouse, not {settings.warehouse}; "
                             "for BigQuery use Looker Studio (retail-pipeline looker-url)")
    path = settings.warehouse[len("duckdb://"):]
    return Path("/" + path.lstrip("/") if path.startswith("//") else path)  # duckdb:////abs/path → /abs/path


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath("assets", name).read_text(encoding="utf-8")


def _script_json(data: dict) -> str:
    """JSON that is safe inside a <script> element (no '</script>', no '<!--')."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") \
        .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def collect_data(db_path: Path) -> dict:
    """Query the warehouse file (read-only) for everything the page shows."""
    if not db_path.exists():
        raise DashboardError(f"no warehouse at {db_path}: run `retail-pipeline run` first")
    con = _connect(db_path)
    try:
        missing = queries.missing_tables(con)
        if missing:
            raise DashboardError(f"{db_path} lacks {', '.join(queries.SCHEMA + '.' + t for t in missing)}: "
                                 "run `retail-pipeline run` (dbt builds them) first")
        return queries.collect(con)
    finally:
        con.close()


def _connect(db_path: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection; inside `run` (dbt still holds the file open read-write in this process,
    and DuckDB shares a database within a process only between connections configured alike) one like dbt's."""
    try:
        return duckdb.connect(str(db_path), read_only=True)
    except duckdb.ConnectionException as exc:
        if "different configuration" not in str(exc):
            raise
        return duckdb.connect(str(db_path))
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise
        raise DashboardError(f"{db_path} is being written by another process (a run in progress?); "
                             f"try again when it is done ({exc})") from exc


def render(data: dict) -> str:
    """The HTML page for the data: the template with styles, script and data inlined."""
    page = _asset("index.html")
    for marker, content in (("/*__STYLE__*/", _asset("dashboard.css")), ("/*__SCRIPT__*/", _asset("dashboard.js")),
                            ("/*__DATA__*/", _script_json(data))):
        if page.count(marker) != 1:
            raise DashboardError(f"template index.html must hold {marker} exactly once")
        page = page.replace(marker, content)
    return page


def build_dashboard(settings: Settings, out: Path | None = None) -> Path:
    """Write the dashboard of the settings' warehouse to ``out`` (default HOME/dashboard/index.html)."""
    db_path = warehouse_file(settings)
    data = collect_data(db_path)
    data["generated_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    data["warehouse"] = str(db_path)
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
