"""The embedded warehouse: one DuckDB file. Raw tables in schema ``raw``, bookkeeping in
``pipeline``, dbt models in ``analytics``. Connections are short-lived, so dbt (run in the same
process) and the functions can take turns on the file."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import duckdb

from ..ports import BatchProgress, LoadRequest, LoadResult, TransformResult
from ..schema import duckdb_ddl

RAW_TABLES = {"sales": "raw.sales_lines", "quarantine": "raw.quarantine", "manifest": "raw.batches"}
LEDGER = """CREATE TABLE IF NOT EXISTS pipeline.load_ledger (
  batch_id VARCHAR NOT NULL, source_uri VARCHAR NOT NULL, source_generation BIGINT NOT NULL,
  kind VARCHAR NOT NULL, partition VARCHAR NOT NULL, object_uri VARCHAR NOT NULL,
  object_generation BIGINT NOT NULL, rows BIGINT NOT NULL, loaded_at TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (batch_id, kind, partition))"""
RUNS = """CREATE TABLE IF NOT EXISTS pipeline.transform_runs (
  batch_id VARCHAR NOT NULL, claim_key VARCHAR NOT NULL, state VARCHAR NOT NULL,
  started_at TIMESTAMPTZ NOT NULL, finished_at TIMESTAMPTZ, tests_passed INTEGER, tests_failed INTEGER,
  models_built INTEGER, seconds DOUBLE, error VARCHAR, PRIMARY KEY (batch_id, claim_key))"""


class WarehouseBusy(RuntimeError):
    """The DuckDB file is locked by another process: transient, the event is retried."""


class DuckDBWarehouse:
    def __init__(self, path: str) -> None:
        self.path = Path(path)

    @contextmanager
    def connect(self, read_only: bool = False):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + 30
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=read_only and self.path.exists())
                break
            except duckdb.IOException as exc:  # another process holds the write lock
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise WarehouseBusy(str(exc)) from exc
                time.sleep(0.2)
        try:
            yield con
        finally:
            con.close()

    def ensure_tables(self) -> None:
        with self.connect() as con:
            con.execute("CREATE SCHEMA IF NOT EXISTS raw; CREATE SCHEMA IF NOT EXISTS pipeline")
            con.execute(duckdb_ddl("sales_lines", "raw.sales_lines"))
            con.execute(duckdb_ddl("quarantine", "raw.quarantine"))
            con.execute(duckdb_ddl("batches", "raw.batches"))
            con.execute(LEDGER)
            con.execute(RUNS)

    def load_object(self, req: LoadRequest) -> LoadResult:
        """Apply one lake object in one transaction: the ledger decides (superseded, already loaded),
        older generations of the source go, then one INSERT ... SELECT FROM read_parquet(...) whose
        own row count is checked against the object's metadata (nothing is read back)."""
        with self.connect() as con:
            # one thread: a load is one small set-based insert; DuckDB's thread pool costs more CPU than
            # it saves there (measured: about a third less CPU for the reference workbook's 13 objects)
            con.execute("SET threads = 1")
            con.execute("PRAGMA disable_checkpoint_on_shutdown")
            con.execute("BEGIN TRANSACTION")
            try:
                newest, oldest = con.execute(
                    "SELECT max(source_generation), min(source_generation) FROM pipeline.load_ledger "
                    "WHERE source_uri = ?", [req.source_uri]).fetchone()
                if newest is not None and newest > req.source_generation:
                    con.execute("ROLLBACK")
                    return LoadResult("superseded", 0)
                done = con.execute("SELECT rows FROM pipeline.load_ledger WHERE batch_id = ? AND kind = ? AND partition = ?",
                                   [req.batch_id, req.kind, req.partition]).fetchone()
                if done is not None:
                    con.execute("ROLLBACK")
                    return LoadResult("already_loaded", done[0])
                if oldest is not None and oldest < req.source_generation:
                    self._delete_older_generations(con, req)
                # raw rows and their ledger row are committed together, so an object the ledger does not
                # list has no rows in the raw table yet: nothing to delete before the insert
                rows = self._insert_manifest(con, req) if req.kind == "manifest" else self._insert_parquet(con, req)
                if rows != req.rows:
                    raise ValueError(f"{req.object_uri}: holds {rows} rows, its metadata says {req.rows}")
                con.execute(
                    "INSERT INTO pipeline.load_ledger VALUES (?, ?, ?, ?, ?, ?, ?, ?, now())",
                    [req.batch_id, req.source_uri, req.source_generation, req.kind, req.partition, req.object_uri,
                     req.object_generation, rows],
                )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return LoadResult("loaded", rows)

    @staticmethod
    def _delete_older_generations(con, req: LoadRequest) -> None:
        """A newer generation of the same landing object replaces everything of the older ones."""
        for older in RAW_TABLES.values():
            con.execute(f"DELETE FROM {older} WHERE source_uri = ? AND source_generation < ?",
                        [req.source_uri, req.source_generation])
        con.execute("DELETE FROM pipeline.load_ledger WHERE source_uri = ? AND source_generation < ?",
                    [req.source_uri, req.source_generation])

    @staticmethod
    def _insert_parquet(con, req: LoadRequest) -> int:
        """One set-based statement: the object's rows of its batch (and month, for sales) straight from
        its Parquet file; returns how many it inserted (a row of another batch or month is not taken,
        so the count then falls short of the metadata's)."""
        where = "batch_id = ?" + (" AND strftime(invoice_month, '%Y-%m') = ?" if req.kind == "sales" else "")
        params = [str(req.local_path), req.batch_id] + ([req.partition] if req.kind == "sales" else [])
        return con.execute(f"INSERT INTO {RAW_TABLES[req.kind]} BY NAME "
                           f"SELECT * FROM read_parquet(?, hive_partitioning = false) WHERE {where}",
                           params).fetchone()[0]

    def _insert_manifest(self, con, req: LoadRequest) -> int:
        m = json.loads(Path(req.local_path).read_text())
        con.execute("DELETE FROM raw.batches WHERE batch_id = ?", [req.batch_id])
        con.execute(
            "INSERT INTO raw.batches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [m["batch_id"], m["source_uri"], m["source_generation"], m["state"], m["error"], m["rows_read"],
             m["rows_loaded"], m["rows_quarantined"], m["rows_duplicate"],
             json.dumps({"partitions": m["partitions"], "quarantine": m["quarantine"]}), m["ingested_at"]],
        )
        return 1

    def batch_progress(self, batch_id: str) -> BatchProgress:
        with self.connect() as con:
            row = con.execute("SELECT state, partitions, source_uri, source_generation FROM raw.batches WHERE batch_id = ?",
                              [batch_id]).fetchone()
            loaded = {(k, p): r for k, p, r in con.execute(
                "SELECT kind, partition, rows FROM pipeline.load_ledger WHERE batch_id = ? AND kind <> 'manifest'",
                [batch_id]).fetchall()}
            superseded = False
            expected: dict[tuple[str, str], int] = {}
            if row is not None:
                expected = BatchProgress.expected_from_layout(row[1])
                newest = con.execute("SELECT max(source_generation) FROM pipeline.load_ledger WHERE source_uri = ?",
                                     [row[2]]).fetchone()[0]
                superseded = newest is not None and newest > row[3]
            else:
                newer = con.execute(
                    "SELECT count(*) FROM pipeline.load_ledger l WHERE l.source_uri IN "
                    "(SELECT source_uri FROM pipeline.load_ledger WHERE batch_id = ?) AND l.batch_id <> ?",
                    [batch_id, batch_id]).fetchone()[0]
                superseded = newer > 0 and not loaded
        return BatchProgress(batch_id, row is not None, row[0] if row else None, expected, loaded, superseded)

    def claim_transform(self, batch_id: str, claim_key: str) -> bool:
        with self.connect() as con:
            try:
                inserted = con.execute(
                    "INSERT INTO pipeline.transform_runs (batch_id, claim_key, state, started_at) "
                    "VALUES (?, ?, 'running', now()) ON CONFLICT DO NOTHING RETURNING batch_id",
                    [batch_id, claim_key]).fetchall()
            except (duckdb.ConstraintException, duckdb.TransactionException):
                return False  # a concurrent claim committed the same key first
        return bool(inserted)

    def finish_transform(self, batch_id: str, claim_key: str, result: TransformResult) -> None:
        with self.connect() as con:
            con.execute(
                "UPDATE pipeline.transform_runs SET state = ?, finished_at = now(), tests_passed = ?, tests_failed = ?, "
                "models_built = ?, seconds = ?, error = ? WHERE batch_id = ? AND claim_key = ?",
                [result.status, result.tests_passed, result.tests_failed, result.models_built, result.seconds,
                 result.error, batch_id, claim_key])

    def release_transform(self, batch_id: str, claim_key: str) -> None:
        with self.connect() as con:
            con.execute("DELETE FROM pipeline.transform_runs WHERE batch_id = ? AND claim_key = ?", [batch_id, claim_key])

    def status(self) -> dict:
        if not self.path.exists():
            return {"warehouse": {"fact_rows": 0, "net_amount": "0.00"}, "loads": {}, "runs": []}
        with self.connect() as con:
            tables = {r[0] for r in con.execute(
                "SELECT table_schema || '.' || table_name FROM information_schema.tables").fetchall()}
            fact_rows, net = 0, Decimal(0)
            if "analytics.fct_sales_lines" in tables:
                fact_rows, net = con.execute(
                    "SELECT count(*), coalesce(sum(quantity * unit_price), 0) FROM analytics.fct_sales_lines").fetchone()
            loads, runs = {}, []
            if "pipeline.load_ledger" in tables:
                for batch_id, kind, n, rows in con.execute(
                        "SELECT batch_id, kind, count(*), sum(rows) FROM pipeline.load_ledger GROUP BY ALL").fetchall():
                    loads.setdefault(batch_id, {})[kind] = {"objects": n, "rows": int(rows)}
                runs = [dict(zip(["batch_id", "claim_key", "state", "started_at", "finished_at", "tests_passed",
                                  "tests_failed", "models_built", "seconds", "error"], r)) for r in con.execute(
                    "SELECT batch_id, claim_key, state, started_at::VARCHAR, finished_at::VARCHAR, tests_passed, "
                    "tests_failed, models_built, seconds, error FROM pipeline.transform_runs ORDER BY started_at").fetchall()]
        return {"warehouse": {"fact_rows": int(fact_rows), "net_amount": Decimal(net)}, "loads": loads, "runs": runs}
