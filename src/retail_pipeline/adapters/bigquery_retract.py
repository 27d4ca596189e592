"""Retraction on BigQuery: the plan read first, then ONE multi-statement transaction (see retract_sql)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from ..ports import RetractResult
from . import retract_sql

if TYPE_CHECKING:
    from .bigquery_warehouse import BigQueryWarehouse


def tables(wh: BigQueryWarehouse) -> retract_sql.RetractTables:
    return retract_sql.RetractTables(
        wh.table(wh.raw, "batches"),
        wh.table(wh.pipeline, "load_ledger"),
        wh.table(wh.raw, "sales_lines"),
        wh.table(wh.raw, "quarantine"),
        wh.table(wh.pipeline, "retractions"),
        lambda name: f"`{name}`",
    )


def retracted_batches(wh: BigQueryWarehouse) -> set[str]:
    return {row[0] for row in wh.query(f"SELECT DISTINCT batch_id FROM {wh.table(wh.pipeline, 'retractions')}")}


def retract(wh: BigQueryWarehouse, target: str, *, who: str, why: str) -> RetractResult:
    """Every statement of the transaction is limited to the planned batch ids, so a retraction that
    races a load of a newer generation removes only what it planned (the newer batch stays)."""
    from .bigquery_warehouse import sql_literal

    t = tables(wh)
    plan_rows = [tuple(row) for row in wh.query(retract_sql.plan_sql(t, sql_literal(target)))]
    pending = [sql_literal(r[0]) for r in plan_rows if not r[3]]
    counts = [tuple(row) for row in wh.query(retract_sql.rows_sql(t, ", ".join(pending)))] if pending else []
    plan = retract_sql.plan(target, plan_rows, counts)
    if plan.batches:
        statements = retract_sql.apply_statements(
            t, plan, retraction_id=uuid.uuid4().hex, who=who, why=why, literal=sql_literal, now="CURRENT_TIMESTAMP()"
        )
        wh.query("BEGIN TRANSACTION;\n" + ";\n".join(statements) + ";\nCOMMIT TRANSACTION;")
    return plan.result
