"""Pipeline status from one source of truth: the warehouse's batches, load ledger and transform runs.

A batch appears once its first object is loaded; its state is decided here, once, from what the
warehouse recorded. The run summary of ``retail-pipeline run`` (both chains) is built here too.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from .context import Context
from .ports import BatchProgress, BatchRecord

FINAL_STATES = ("transformed", "superseded", "rejected", "transform_failed", "retracted")
GOOD_FINAL_STATES = ("transformed", "superseded", "retracted")


def format_money(value: Any) -> str:
    """Exact decimal as text, at least two places, no trailing zeros beyond them ('22075976.06')."""
    value = Decimal(value)
    text = format(value.normalize(), "f") if value != value.to_integral() else format(value.quantize(Decimal("1")), "f")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def batch_state(record: BatchRecord) -> str:
    """The one rule that names a batch's state."""
    run = record.run
    if record.manifest_state == "rejected":
        return "rejected"
    if record.manifest_state == "retracted":
        return "retracted"
    if record.source_generation < record.newest_generation:
        return "superseded"
    if run and run["state"] == "success":
        return "transformed"
    if run and run["state"] == "failed":
        return "transform_failed"
    if run:
        return "transforming"  # 'running' in this process, or 'started' as a Cloud Run job execution
    if record.layout is not None:
        expected = BatchProgress.expected_from_layout(record.layout)
        if all(record.loaded.get(key) == rows for key, rows in expected.items()):
            return "loaded"
    return "loading" if record.loaded else "ingested"


def _batch(record: BatchRecord) -> dict[str, Any]:
    run = record.run or {}
    partitions = (
        sum(1 for kind, _ in BatchProgress.expected_from_layout(record.layout) if kind == "sales")
        if record.layout is not None
        else sum(1 for kind, _ in record.loaded if kind == "sales")
    )
    return {
        "batch_id": record.batch_id,
        "source": record.source_uri,
        "source_generation": record.source_generation,
        "state": batch_state(record),
        "error": record.error or run.get("error"),
        "error_code": record.error_code,
        "rows": record.rows,
        "partitions": partitions,
        "ingested_at": record.ingested_at,
        "execution": run.get("execution"),
        "run_started_at": run.get("started_at"),
    }


def collect(ctx: Context) -> dict[str, Any]:
    warehouse = ctx.warehouse
    records = warehouse.batch_records()
    runs = warehouse.runs()
    figures = warehouse.figures()
    last = runs[-1] if runs else None
    batches = [_batch(r) for r in records]
    transformed = [b["ingested_at"] for b in batches if b["state"] == "transformed" and b["ingested_at"]]
    return {
        "home": str(ctx.settings.home),
        "warehouse_url": ctx.settings.warehouse,
        "batches": batches,
        "data_as_of": max(transformed) if transformed else None,  #: newest ingest the marts count
        "warehouse": {"fact_rows": figures.fact_rows, "net_amount": format_money(figures.net_amount)},
        "dbt": {
            "status": last["state"] if last else "never_run",
            "tests_passed": (last or {}).get("tests_passed") or 0,
            "tests_failed": (last or {}).get("tests_failed") or 0,
            "models_built": (last or {}).get("models_built") or 0,
            "runs": len(runs),
            "batch_id": (last or {}).get("batch_id"),
            "execution": (last or {}).get("execution"),
            "error": (last or {}).get("error"),
        },
    }


def run_summary(
    report: dict[str, Any],
    batch_ids: Iterable[str],
    *,
    dead_letters: list[dict],
    seconds: dict[str, float],
    deliveries: dict[str, int],
) -> dict[str, Any]:
    """The summary of one run of some dropped files (both chains): their batches, and whether all went well."""
    wanted = list(batch_ids)
    mine = [b for b in report["batches"] if b["batch_id"] in wanted]
    ok = not dead_letters and len(mine) == len(wanted) and all(b["state"] in GOOD_FINAL_STATES for b in mine)
    return {
        **report,
        "batches": mine,
        "ok": ok,
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "dead_letters": dead_letters,
        "deliveries": dict(deliveries),
    }
