"""Pipeline status: batches (from the lake's manifests), warehouse figures and the last dbt run."""

from __future__ import annotations

from decimal import Decimal

from .context import Context
from .lake import list_manifests


def format_money(value: Decimal) -> str:
    """Exact decimal as text, at least two places, no trailing zeros beyond them ('22075976.06')."""
    value = Decimal(value)
    text = format(value.normalize(), "f") if value != value.to_integral() else format(value.quantize(Decimal("1")), "f")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def collect(ctx: Context) -> dict:
    manifests = list_manifests(ctx.lake)
    wh = ctx.warehouse.status()
    runs_by_batch: dict[str, dict] = {}
    for run in wh["runs"]:
        runs_by_batch[run["batch_id"]] = run  # ordered by start: the last one wins
    newest_generation: dict[str, int] = {}
    for m in manifests:
        newest_generation[m["source_uri"]] = max(newest_generation.get(m["source_uri"], -1), m["source_generation"])
    batches = []
    for m in sorted(manifests, key=lambda m: (m["ingested_at"], m["batch_id"])):
        loads = wh["loads"].get(m["batch_id"], {})
        loaded_objects = loads.get("sales", {}).get("objects", 0)
        run = runs_by_batch.get(m["batch_id"])
        if m["state"] == "rejected":
            state = "rejected"
        elif m["source_generation"] < newest_generation[m["source_uri"]]:
            state = "superseded"
        elif run and run["state"] == "success":
            state = "transformed"
        elif run and run["state"] == "failed":
            state = "transform_failed"
        elif run:
            state = "transforming"
        elif "manifest" in loads and loaded_objects == len(m["partitions"]):
            state = "loaded"
        elif loads:
            state = "loading"
        else:
            state = "ingested"
        batches.append({
            "batch_id": m["batch_id"],
            "source": m["source_uri"],
            "source_generation": m["source_generation"],
            "state": state,
            "error": m["error"] or (run or {}).get("error"),
            "error_code": m.get("error_code"),
            "rows": {"read": m["rows_read"], "loaded": m["rows_loaded"], "quarantined": m["rows_quarantined"],
                     "duplicates": m["rows_duplicate"]},
            "partitions": len(m["partitions"]),
            "ingested_at": m["ingested_at"],
            "ingest_seconds": m["seconds"],
        })
    last = wh["runs"][-1] if wh["runs"] else None
    return {
        "home": str(ctx.settings.home),
        "warehouse_url": ctx.settings.warehouse,
        "batches": batches,
        "warehouse": {"fact_rows": wh["warehouse"]["fact_rows"], "net_amount": format_money(wh["warehouse"]["net_amount"])},
        "dbt": {
            "status": last["state"] if last else "never_run",
            "tests_passed": (last or {}).get("tests_passed") or 0,
            "tests_failed": (last or {}).get("tests_failed") or 0,
            "runs": len(wh["runs"]),
            "batch_id": (last or {}).get("batch_id"),
            "error": (last or {}).get("error"),
        },
    }
