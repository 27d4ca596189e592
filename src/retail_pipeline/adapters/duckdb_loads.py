"""DuckDB loads with exactly-once effect: one transaction per lake object, decided by the ledger,
one set-based INSERT ... SELECT FROM read_parquet(...) whose own row count is checked."""

from __future__ import annotations

import json
import tempfile
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import duckdb

from ..config import Faults
from ..faults import maybe_crash
from ..ports import LoadRequest, LoadResult, ObjectStore
from .duckdb_sql import inline

RAW_TABLES = {"sales": "raw.sales_lines", "quarantine": "raw.quarantine", "manifest": "raw.batches"}


class DuckDBLoads:
    """The load half of :class:`~.duckdb_warehouse.DuckDBWarehouse` (a mixin: it uses its connections)."""

    lake: ObjectStore
    faults: Faults

    def connect(self, read_only: bool = False) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def load_object(self, req: LoadRequest) -> LoadResult:
        """Apply one lake object in one transaction: the ledger decides (superseded, already loaded),
        older generations of the source go, then one INSERT ... SELECT FROM read_parquet(...) whose
        own row count is checked against the object's metadata (nothing is read back)."""
        with tempfile.TemporaryDirectory(prefix="lake-") as tmp:
            local = self.lake.download(req.object_name, Path(tmp))
            maybe_crash(self.faults, "load.after_job", f"{req.object_uri}#{req.object_generation}")
            return self._load_file(req, local)

    def _load_file(self, req: LoadRequest, local_path: Path) -> LoadResult:
        with self.connect() as con:
            # one thread: a load is one small set-based insert; DuckDB's thread pool costs more CPU than
            # it saves there (measured: about a third less CPU for the reference workbook's 13 objects)
            con.execute("SET threads = 1")
            con.execute("PRAGMA disable_checkpoint_on_shutdown")
            con.execute("BEGIN TRANSACTION")
            try:
                newest, oldest = con.execute(
                    inline(
                        "SELECT max(source_generation), min(source_generation) FROM pipeline.load_ledger "
                        "WHERE source_uri = ?",
                        [req.source_uri],
                    )
                ).fetchone()
                if newest is not None and newest > req.source_generation:
                    con.execute("ROLLBACK")
                    return LoadResult("superseded", 0)
                done = con.execute(
                    inline(
                        "SELECT rows FROM pipeline.load_ledger WHERE batch_id = ? AND kind = ? AND partition = ?",
                        [req.batch_id, req.kind, req.partition],
                    )
                ).fetchone()
                if done is not None:
                    con.execute("ROLLBACK")
                    return LoadResult("already_loaded", done[0])
                if oldest is not None and oldest < req.source_generation:
                    self._delete_older_generations(con, req)
                # raw rows and their ledger row are committed together, so an object the ledger does not
                # list has no rows in the raw table yet: nothing to delete before the insert
                rows = (
                    self._insert_manifest(con, req, local_path)
                    if req.kind == "manifest"
                    else self._insert_parquet(con, req, local_path)
                )
                if rows != req.rows:
                    raise ValueError(f"{req.object_uri}: holds {rows} rows, its metadata says {req.rows}")
                con.execute(
                    inline(
                        "INSERT INTO pipeline.load_ledger (batch_id, source_uri, source_generation, kind, partition, "
                        "object_uri, object_generation, rows, loaded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, now())",
                        [
                            req.batch_id,
                            req.source_uri,
                            req.source_generation,
                            req.kind,
                            req.partition,
                            req.object_uri,
                            req.object_generation,
                            rows,
                        ],
                    )
                )
                con.execute("COMMIT")
            except BaseException:
                rollback(con)
                raise
        return LoadResult("loaded", rows)

    @staticmethod
    def _delete_older_generations(con: Any, req: LoadRequest) -> None:
        """A newer generation of the same landing object replaces the older ones' rows; their ledger
        rows stay, the record that a newer generation superseded them."""
        for older in RAW_TABLES.values():
            con.execute(
                inline(
                    f"DELETE FROM {older} WHERE source_uri = ? AND source_generation < ?",
                    [req.source_uri, req.source_generation],
                )
            )

    @staticmethod
    def _insert_parquet(con: Any, req: LoadRequest, local_path: Path) -> int:
        """One set-based statement: the object's rows of its batch (and month, for sales) straight from
        its Parquet file; returns how many it inserted (a row of another batch or month is not taken,
        so the count then falls short of the metadata's)."""
        where = "batch_id = ?" + (" AND strftime(invoice_month, '%Y-%m') = ?" if req.kind == "sales" else "")
        params = [str(local_path), req.batch_id] + ([req.partition] if req.kind == "sales" else [])
        return con.execute(
            inline(
                f"INSERT INTO {RAW_TABLES[req.kind]} BY NAME "
                f"SELECT * FROM read_parquet(?, hive_partitioning = false) WHERE {where}",
                params,
            )
        ).fetchone()[0]

    def _insert_manifest(self, con: Any, req: LoadRequest, local_path: Path) -> int:
        m = json.loads(local_path.read_text())
        con.execute(inline("DELETE FROM raw.batches WHERE batch_id = ?", [req.batch_id]))
        con.execute(
            inline(
                "INSERT INTO raw.batches BY NAME SELECT ? AS batch_id, ? AS source_uri, ? AS source_generation, "
                "? AS state, ? AS error, ? AS error_code, ? AS rows_read, ? AS rows_loaded, ? AS rows_quarantined, "
                "? AS rows_duplicate, ? AS partitions, ? AS ingested_at",
                [
                    m["batch_id"],
                    m["source_uri"],
                    m["source_generation"],
                    m["state"],
                    m["error"],
                    m.get("error_code"),
                    m["rows_read"],
                    m["rows_loaded"],
                    m["rows_quarantined"],
                    m["rows_duplicate"],
                    json.dumps({"partitions": m["partitions"], "quarantine": m["quarantine"]}),
                    m["ingested_at"],
                ],
            )
        )
        return 1


def rollback(con: Any) -> None:
    """Roll back the connection's transaction, if DuckDB has not already: an interrupted or failed
    COMMIT ends it, and "no transaction is active" must not hide why the transaction failed."""
    try:
        con.execute("ROLLBACK")
    except duckdb.TransactionException:
        pass
