"""Values written into DuckDB statements as literals instead of bound parameters.

Binding any parameter makes DuckDB's Python client import pandas (0.4 s of one core, longer when
its modules are not byte-compiled yet), in every process that does it: the CLI before its first
drop (the sweep), each load. The pipeline's own statements take their few values as literals.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def sql_literal(value: Any) -> str:
    """A DuckDB literal (standard SQL quoting: a quote is doubled, nothing else is special)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return f"CAST('{value!r}' AS DOUBLE)"  # also 'nan', 'inf', '-inf'
    text = str(value)
    if "\x00" in text:
        raise ValueError(f"a NUL character cannot be written into a DuckDB statement: {text!r}")
    return "'" + text.replace("'", "''") + "'"


def inline(sql: str, params: Sequence[Any]) -> str:
    """``sql`` with each ``?`` placeholder (outside quotes and identifiers) replaced by the next
    value's literal; the number of placeholders must equal the number of values."""
    out: list[str] = []
    values = iter(params)
    used = 0
    quote = ""
    for char in sql:
        if quote:
            quote = "" if char == quote else quote  # a doubled quote closes and reopens: same result
        elif char in "'\"":
            quote = char
        elif char == "?":
            try:
                out.append(sql_literal(next(values)))
            except StopIteration:
                raise ValueError(f"more placeholders than the {len(params)} values given: {sql}") from None
            used += 1
            continue
        out.append(char)
    if used != len(params):
        raise ValueError(f"{len(params)} values for {used} placeholders: {sql}")
    return "".join(out)
