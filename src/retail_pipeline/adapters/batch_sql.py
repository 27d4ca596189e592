"""The warehouse's batch queries, written once for both SQL dialects (DuckDB and GoogleSQL).

Each adapter gives its table names and its identifier quoting; the rules (what makes a batch
superseded, complete, claimable) live here and in :class:`~retail_pipeline.ports.BatchProgress`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..ports import BatchProgress, BatchRecord


@dataclass(frozen=True)
class Tables:
    batches: str  #: raw batches (one row per loaded manifest)
    ledger: str  #: pipeline load ledger
    runs: str  #: pipeline transform runs
    quote: Callable[[str], str]  #: identifier quoting of the dialect


def newest_generation_sql(t: Tables, source_expr: str) -> str:
    """The newest generation of a source the warehouse has seen (its ledger is the record)."""
    return f"(SELECT max(n.source_generation) FROM {t.ledger} n WHERE n.source_uri = {source_expr})"


def claimable_sql(t: Tables, exclude_literal: str) -> str:
    """Ingested, not superseded, never claimed batches, with their ledger rows (one query)."""
    q = t.quote
    return (
        f"SELECT b.batch_id, b.{q('partitions')}, l.kind, l.{q('partition')}, l.{q('rows')} "
        f"FROM {t.batches} b LEFT JOIN {t.ledger} l ON l.batch_id = b.batch_id AND l.kind <> 'manifest' "
        f"WHERE b.state = 'ingested' AND b.batch_id <> {exclude_literal} "
        f"AND NOT EXISTS (SELECT 1 FROM {t.runs} r WHERE r.batch_id = b.batch_id) "
        f"AND NOT EXISTS (SELECT 1 FROM {t.ledger} n WHERE n.source_uri = b.source_uri "
        f"AND n.source_generation > b.source_generation) "
        "ORDER BY b.batch_id"
    )


def claimable_from_rows(rows: Iterable[tuple[Any, ...]]) -> list[BatchProgress]:
    """Group :func:`claimable_sql`'s rows into batches and keep the complete ones."""
    layouts: dict[str, str] = {}
    loaded: dict[str, dict[tuple[str, str], int]] = {}
    for batch_id, layout, kind, partition, nrows in rows:
        layouts[batch_id] = layout
        if kind is not None:
            loaded.setdefault(batch_id, {})[(kind, partition)] = int(nrows)
    out = []
    for batch_id, layout in layouts.items():
        progress = BatchProgress(
            batch_id,
            True,
            "ingested",
            BatchProgress.expected_from_layout(layout),
            loaded.get(batch_id, {}),
            superseded=False,
        )
        if progress.complete:
            out.append(progress)
    return out


BATCH_COLUMNS = (
    "batch_id",
    "source_uri",
    "source_generation",
    "state",
    "error",
    "error_code",
    "rows_read",
    "rows_loaded",
    "rows_quarantined",
    "rows_duplicate",
    "partitions",
    "ingested_at",
)
RUN_COLUMNS = (
    "batch_id",
    "claim_key",
    "state",
    "started_at",
    "finished_at",
    "tests_passed",
    "tests_failed",
    "models_built",
    "seconds",
    "error",
    "execution",
)


def batches_sql(t: Tables) -> str:
    cols = ", ".join(t.quote(c) for c in BATCH_COLUMNS)
    return f"SELECT {cols} FROM {t.batches}"


def ledger_sql(t: Tables) -> str:
    q = t.quote
    return f"SELECT batch_id, source_uri, source_generation, kind, {q('partition')}, {q('rows')} FROM {t.ledger}"


def runs_sql(t: Tables) -> str:
    return f"SELECT {', '.join(RUN_COLUMNS)} FROM {t.runs} ORDER BY started_at, claim_key"


def records(
    batch_rows: Iterable[tuple[Any, ...]],
    ledger_rows: Iterable[tuple[Any, ...]],
    runs: list[dict],
    retracted: frozenset[str] | set[str] = frozenset(),
) -> list[BatchRecord]:
    """Every batch the warehouse knows (by manifest or by loads), with its loads and latest run; a
    retracted batch (raw rows removed, ledger rows kept) has the manifest state 'retracted'."""
    manifests = {row[0]: dict(zip(BATCH_COLUMNS, row)) for row in batch_rows}
    loaded: dict[str, dict[tuple[str, str], int]] = {}
    sources: dict[str, tuple[str, int]] = {}
    newest: dict[str, int] = {}
    for batch_id, source_uri, generation, kind, partition, nrows in ledger_rows:
        sources[batch_id] = (source_uri, int(generation))
        newest[source_uri] = max(newest.get(source_uri, -1), int(generation))
        if kind != "manifest":
            loaded.setdefault(batch_id, {})[(kind, partition)] = int(nrows)
    for manifest in manifests.values():
        newest[manifest["source_uri"]] = max(newest.get(manifest["source_uri"], -1), int(manifest["source_generation"]))
    last_run = {run["batch_id"]: run for run in runs}  # ordered by start: the last one wins
    out = []
    for batch_id in sorted(set(manifests) | set(sources)):
        m: dict[str, Any] | None = manifests.get(batch_id)
        source_uri, generation = (m["source_uri"], int(m["source_generation"])) if m else sources[batch_id]
        mine = loaded.get(batch_id, {})
        # without its manifest (a superseded generation) only the ledger's counts are known
        rows: dict[str, int | None] = {
            "read": None,
            "loaded": sum(n for (k, _), n in mine.items() if k == "sales"),
            "quarantined": sum(n for (k, _), n in mine.items() if k == "quarantine"),
            "duplicates": None,
        }
        if m:
            rows = {
                "read": int(m["rows_read"]),
                "loaded": int(m["rows_loaded"]),
                "quarantined": int(m["rows_quarantined"]),
                "duplicates": int(m["rows_duplicate"]),
            }
        out.append(
            BatchRecord(
                batch_id=batch_id,
                source_uri=source_uri,
                source_generation=generation,
                manifest_state=m["state"] if m else ("retracted" if batch_id in retracted else None),
                error=m["error"] if m else None,
                error_code=m["error_code"] if m else None,
                rows=rows,
                layout=m["partitions"] if m else None,
                ingested_at=str(m["ingested_at"]) if m and m["ingested_at"] is not None else None,
                newest_generation=newest[source_uri],
                loaded=loaded.get(batch_id, {}),
                run=last_run.get(batch_id),
            )
        )
    out.sort(key=lambda r: (r.source_generation, r.batch_id))  # generations count up in time: upload order
    return out
