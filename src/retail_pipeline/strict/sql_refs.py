"""The tables a GoogleSQL script reads and writes, for the strict layer's IAM checks.

Not a parser: comments and string literals are dropped, the script is split into statements at
top-level ``;``, and each statement's leading keywords say what it does to the table named after
them; every other table name after ``FROM``/``JOIN``/``USING`` (or written as a backtick-quoted
``project.dataset.table`` anywhere) is read. Only names with a dataset part count: one-part names
are CTEs, temporary tables or the job's default dataset (not checked). Approximations are listed
in :func:`table_uses`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_COMMENT_OR_STRING = re.compile(
    r"--[^\n]*|#[^\n]*|/\*.*?\*/"  # comments
    r"|[rRbB]{0,2}('''.*?'''|\"\"\".*?\"\"\"|'(?:\\.|[^'\\\n])*'|\"(?:\\.|[^\"\\\n])*\")",  # strings
    re.S,
)
_TOKEN = re.compile(r"`(?:[^`\\]|\\.)*`|[A-Za-z_][A-Za-z0-9_-]*|\d+|\S")
_NAME_AFTER = {"FROM", "JOIN", "USING"}
_SKIP_BEFORE_NAME = {
    "IF",
    "NOT",
    "EXISTS",
    "TEMP",
    "TEMPORARY",
    "OR",
    "REPLACE",
    "MATERIALIZED",
    "EXTERNAL",
    "SNAPSHOT",
    "ONLY",
}


_FROM_FUNCTIONS = {"EXTRACT", "SUBSTRING", "TRIM", "NORMALIZE"}  #: FROM inside these is no table


def _inside_from_functions(upper: list[str]) -> list[bool]:
    """For each token: is it inside the parentheses of EXTRACT(part FROM expr) and the like?"""
    out, stack = [], []
    for i, tok in enumerate(upper):
        if tok == "(":
            stack.append(i > 0 and upper[i - 1] in _FROM_FUNCTIONS)
        elif tok == ")" and stack:
            stack.pop()
        out.append(bool(stack) and stack[-1])
    return out


@dataclass(frozen=True)
class TableUse:
    """One table (or dataset, for ``kind == "dataset_*"``) and what a statement does with it."""

    kind: str  #: read | insert | modify | create | drop | truncate | alter | dataset_create | dataset_drop | metadata
    project: str
    dataset: str
    table: str | None  #: None for dataset-level uses


def _strip(sql: str) -> str:
    return _COMMENT_OR_STRING.sub(lambda m: " " if m[0][0] in "-#/" else "''", sql)


def _tokens(statement: str) -> list[str]:
    return _TOKEN.findall(statement)


def _path_at(tokens: list[str], i: int) -> tuple[list[str], int]:
    """The dotted name starting at tokens[i] (``a.b.c``, ```a.b`.c``, ```a`.`b`.`c```) and the index after it."""
    parts: list[str] = []
    while i < len(tokens):
        tok = tokens[i]
        if tok.startswith("`"):
            parts.extend(tok[1:-1].split("."))
        elif re.match(r"[A-Za-z_]", tok):
            parts.append(tok)
        else:
            break
        if i + 1 < len(tokens) and tokens[i + 1] == ".":
            i += 2
            continue
        i += 1
        break
    return parts, i


def _resolve(parts: list[str], project: str, kind: str) -> TableUse | None:
    upper = [p.upper() for p in parts]
    if "INFORMATION_SCHEMA" in upper:  # dataset.INFORMATION_SCHEMA.X: the dataset's metadata
        at = upper.index("INFORMATION_SCHEMA")
        before = parts[:at]
        if len(before) == 2:
            return TableUse("metadata", before[0], before[1], None)
        if len(before) == 1 and not before[0].lower().startswith("region-"):
            return TableUse("metadata", project, before[0], None)
        return TableUse("metadata", project, "", None)  # region-qualified: project-wide metadata
    if len(parts) == 3:
        return TableUse(kind, parts[0], parts[1], parts[2])
    if len(parts) == 2:
        return TableUse(kind, project, parts[0], parts[1])
    return None


def _statement_uses(tokens: list[str], project: str) -> list[TableUse]:
    uses: list[TableUse] = []
    upper = [t.upper() for t in tokens]
    target_kind, target_at = None, None
    head = [u for u in upper[:3]]
    if head[:1] == ["INSERT"]:
        target_kind, target_at = "insert", 2 if upper[1:2] == ["INTO"] else 1
    elif head[:1] == ["UPDATE"]:
        target_kind, target_at = "modify", 1
    elif head[:1] == ["DELETE"]:
        target_kind, target_at = "modify", 2 if upper[1:2] == ["FROM"] else 1
    elif head[:1] == ["MERGE"]:
        target_kind, target_at = "modify", 2 if upper[1:2] == ["INTO"] else 1
    elif head[:1] == ["TRUNCATE"]:
        target_kind, target_at = "truncate", 2
    elif head[:2] == ["ALTER", "TABLE"]:
        target_kind, target_at = "alter", 2
    elif head[:1] in (["CREATE"], ["DROP"]):
        j = 1
        while j < len(upper) and upper[j] in _SKIP_BEFORE_NAME:
            j += 1
        obj = upper[j] if j < len(upper) else ""
        j += 1
        while j < len(upper) and upper[j] in _SKIP_BEFORE_NAME:
            j += 1
        if obj in ("SCHEMA", "DATASET"):
            parts, _ = _path_at(tokens, j)
            dataset = parts[-1] if parts else ""
            owner = parts[0] if len(parts) == 2 else project
            uses.append(TableUse("dataset_create" if head[0] == "CREATE" else "dataset_drop", owner, dataset, None))
        elif obj in ("TABLE", "VIEW", "FUNCTION", "PROCEDURE"):
            target_kind, target_at = ("create" if head[0] == "CREATE" else "drop"), j
    if target_at is not None and target_kind is not None:
        parts, _ = _path_at(tokens, target_at)
        use = _resolve(parts, project, target_kind)
        if use is not None:
            uses.append(use)
    in_function = _inside_from_functions(upper)
    for i, tok in enumerate(tokens):
        if upper[i] in _NAME_AFTER and i + 1 < len(tokens) and tokens[i + 1] != "(" and not in_function[i]:
            parts, _ = _path_at(tokens, i + 1)
        elif tok.startswith("`") and tok.count(".") >= 2 and (i == 0 or tokens[i - 1] != "."):
            parts, _ = _path_at(tokens, i)
        else:
            continue
        use = _resolve(parts, project, "read")
        if use is not None and not any(
            u.kind != "read"
            and (u.project, u.dataset, u.table) == (use.project, use.dataset, use.table)
            and u.kind in ("create", "drop")
            for u in uses
        ):
            uses.append(use)
    return uses


def table_uses(sql: str, project: str) -> list[TableUse]:
    """What SQL does to which tables, in order, without repeats (PROJECT: the job's project).

    Approximations: one-part names are not checked (CTEs, temp tables, default dataset); a name
    read inside a statement is ``read`` even when it is also the statement's target; procedural
    blocks (``IF``/``LOOP``) are scanned for names but their statements are not classified
    unless they start a ``;``-separated piece; EXECUTE IMMEDIATE strings are not looked into.
    """
    seen: list[TableUse] = []
    for statement in _strip(sql).split(";"):
        tokens = _tokens(statement)
        while tokens and tokens[0].upper() in ("BEGIN", "THEN", "ELSE", "DO"):
            tokens = tokens[1:]
        for use in _statement_uses(tokens, project):
            if use not in seen:
                seen.append(use)
    return seen
