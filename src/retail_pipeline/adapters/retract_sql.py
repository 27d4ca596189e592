"""Retraction queries, written once for both SQL dialects (DuckDB and GoogleSQL).

A retraction removes every not-yet-retracted batch of one source (all its generations) from the
raw tables and keeps the load ledger rows, so a redelivered finalize event or a sweep sees the lake
objects as applied and never loads them again. One audit row per batch goes to
``pipeline.retractions``. The caller runs :func:`plan_sql` and :func:`rows_sql`, builds a
:class:`Plan` with :func:`plan`, then runs :func:`apply_statements` in one transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from ..ports import RetractResult


@dataclass(frozen=True)
class RetractTables:
    batches: str
    ledger: str
    sales: str
    quarantine: str
    retractions: str
    quote: Callable[[str], str]


def _source_of(t: RetractTables, target: str) -> str:
    """Rows of the target's source: ``target`` (a literal) is a source URI or one of its batch ids."""
    return (
        f"(source_uri = {target} OR source_uri IN (SELECT source_uri FROM {t.ledger} WHERE batch_id = {target}) "
        f"OR source_uri IN (SELECT source_uri FROM {t.batches} WHERE batch_id = {target}))"
    )


def plan_sql(t: RetractTables, target: str) -> str:
    """(batch_id, source_uri, source_generation, already_retracted) of every batch of the target's source."""
    return (
        f"SELECT k.batch_id, k.source_uri, k.source_generation, "
        f"k.batch_id IN (SELECT batch_id FROM {t.retractions}) AS done FROM ("
        f"SELECT DISTINCT batch_id, source_uri, source_generation FROM {t.ledger} WHERE {_source_of(t, target)} "
        f"UNION DISTINCT SELECT DISTINCT batch_id, source_uri, source_generation FROM {t.batches} "
        f"WHERE {_source_of(t, target)}) k ORDER BY k.source_generation, k.batch_id"
    )


def rows_sql(t: RetractTables, batch_list: str) -> str:
    """(kind, batch_id, invoice_month, rows) of the raw rows of the batches (``batch_list``: literals)."""
    return (
        f"SELECT 'sales', batch_id, invoice_month, count(*) FROM {t.sales} WHERE batch_id IN ({batch_list}) "
        f"GROUP BY batch_id, invoice_month UNION ALL "
        f"SELECT 'quarantine', batch_id, NULL, count(*) FROM {t.quarantine} WHERE batch_id IN ({batch_list}) "
        f"GROUP BY batch_id"
    )


@dataclass(frozen=True)
class Plan:
    result: RetractResult
    batches: list[tuple[str, str, int]]  #: (batch_id, source_uri, source_generation) to retract
    sales: dict[str, int]
    quarantine: dict[str, int]
    months: dict[str, list[str]]


def plan(target: str, plan_rows: Iterable[tuple[Any, ...]], count_rows: Iterable[tuple[Any, ...]]) -> Plan:
    """The retraction of the not-yet-retracted batches among ``plan_rows`` (LookupError: none known)."""
    known = [(str(b), str(s), int(g), bool(done)) for b, s, g, done in plan_rows]
    if not known:
        raise LookupError(f"no batch of {target!r} is in the warehouse (give a source URI or a batch id)")
    batches = [(b, s, g) for b, s, g, done in known if not done]
    sales: dict[str, int] = {}
    quarantine: dict[str, int] = {}
    months: dict[str, set[str]] = {}
    for kind, batch_id, month, n in count_rows:
        if kind == "sales":
            sales[batch_id] = sales.get(batch_id, 0) + int(n)
            stamp = month if isinstance(month, date) else date.fromisoformat(str(month)[:10])
            months.setdefault(batch_id, set()).add(stamp.strftime("%Y-%m"))
        else:
            quarantine[batch_id] = int(n)
    all_months = sorted({m for ms in months.values() for m in ms})
    result = RetractResult(
        target=target,
        batch_ids=[b for b, _, _ in batches],
        source_uris=sorted({s for _, s, _, _ in known}),
        rows_removed=sum(sales.values()),
        quarantine_removed=sum(quarantine.values()),
        partitions=all_months,
    )
    return Plan(result, batches, sales, quarantine, {b: sorted(ms) for b, ms in months.items()})


def apply_statements(
    t: RetractTables, p: Plan, *, retraction_id: str, who: str, why: str, literal: Callable[[Any], str], now: str
) -> list[str]:
    """The DELETEs and audit INSERTs of one retraction (run inside one transaction)."""
    batch_list = ", ".join(literal(b) for b, _, _ in p.batches)
    q = t.quote
    statements = [
        f"DELETE FROM {table} WHERE batch_id IN ({batch_list})" for table in (t.sales, t.quarantine, t.batches)
    ]
    cols = (
        "batch_id",
        "source_uri",
        "source_generation",
        "retraction_id",
        "rows_removed",
        "quarantine_removed",
        "partitions",
        "retracted_by",
        "reason",
        "retracted_at",
    )
    for batch_id, source_uri, generation in p.batches:
        values = [
            literal(v)
            for v in (
                batch_id,
                source_uri,
                generation,
                retraction_id,
                p.sales.get(batch_id, 0),
                p.quarantine.get(batch_id, 0),
                json.dumps(p.months.get(batch_id, [])),
                who,
                why or None,
            )
        ]
        statements.append(
            f"INSERT INTO {t.retractions} ({', '.join(q(c) for c in cols)}) VALUES ({', '.join(values)}, {now})"
        )
    return statements


def batch_literals(p: Plan, literal: Callable[[Any], str]) -> str:
    return ", ".join(literal(b) for b, _, _ in p.batches)
