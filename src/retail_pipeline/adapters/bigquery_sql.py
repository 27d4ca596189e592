"""GoogleSQL literals and the raw tables a lake object kind goes to (shared by the BigQuery modules)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

RAW_TABLES = {"sales": "sales_lines", "quarantine": "quarantine", "manifest": "batches"}


def sql_literal(value: Any) -> str:
    """A GoogleSQL literal. Scripts are inlined because the emulator passes no query parameters into
    multi-statement scripts; strings are escaped, everything else is typed."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return repr(float(value))
    if isinstance(value, date) and not isinstance(value, datetime):
        return f"DATE '{value.isoformat()}'"
    text = str(value).replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r")
    return f"'{text}'"
