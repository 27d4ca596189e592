"""BigQuery loads with exactly-once effect (see bigquery_warehouse.py's docstring for the design):
a load job into a staging table under a deterministic job id, then one guarded transaction."""

from __future__ import annotations

import hashlib
import json
import uuid
from calendar import monthrange
from datetime import date
from typing import Any

from ..config import Faults
from ..faults import maybe_crash
from ..ports import LoadRequest, LoadResult, ObjectStore
from ..schema import TABLES
from .bigquery_sql import RAW_TABLES, sql_literal


def load_job_id(object_uri: str, generation: int) -> str:
    """Deterministic load job id: one per lake object generation."""
    return "retail_load_" + hashlib.sha256(f"{object_uri}#{generation}".encode()).hexdigest()[:40]


class BigQueryLoads:
    """The load half of :class:`~.bigquery_warehouse.BigQueryWarehouse` (a mixin: it uses its client)."""

    client: Any
    project: str
    raw: str
    pipeline: str
    lake: ObjectStore
    faults: Faults
    timeout: float

    def table(self, dataset: str, name: str) -> str:
        raise NotImplementedError

    def query(self, sql: str) -> list:
        raise NotImplementedError

    @staticmethod
    def raw_schema(name: str) -> list:
        raise NotImplementedError

    # -- loads ----------------------------------------------------------------------------------
    def _ledger_select(self, req: LoadRequest) -> str:
        """The ledger's word on the object: the source's newest generation, and the rows and token of
        the load that applied this object's key, if one did."""
        ledger = self.table(self.pipeline, "load_ledger")
        return (
            f"SELECT (SELECT max(source_generation) FROM {ledger} WHERE source_uri = {sql_literal(req.source_uri)}),"
            f" (SELECT max(`rows`) FROM {ledger} WHERE {self._key(req)}),"
            f" (SELECT max(load_token) FROM {ledger} WHERE {self._key(req)})"
        )

    def _ledger_state(self, req: LoadRequest) -> tuple[int | None, int | None, str | None]:
        row = self.query(self._ledger_select(req))[0]
        return row[0], row[1], row[2]

    @staticmethod
    def _key(req: LoadRequest) -> str:
        return (
            f"batch_id = {sql_literal(req.batch_id)} AND kind = {sql_literal(req.kind)} "
            f"AND `partition` = {sql_literal(req.partition)}"
        )

    def load_object(self, req: LoadRequest) -> LoadResult:
        """Apply one lake object (gs:// URI) to its raw table with exactly-once effect."""
        newest, done, _ = self._ledger_state(req)
        if newest is not None and newest > req.source_generation:
            return LoadResult("superseded", 0)
        if done is not None:
            return LoadResult("already_loaded", int(done))
        token = uuid.uuid4().hex
        stage = None
        try:
            if req.kind == "manifest":
                source_sql = self._manifest_select(req)
            else:
                stage = self._stage(req)
                cols = ", ".join(f"`{c.name}`" for c in TABLES[RAW_TABLES[req.kind]])
                source_sql = f"SELECT {cols} FROM {self.table(self.pipeline, stage)}"
            # the script ends by reading the ledger back: a script job's result is its last statement's (the
            # default key result statement, LAST), so this is one job, not two
            newest, done, winner = tuple(self.query(self._apply_script(req, source_sql, token))[0])
        finally:
            if stage is not None:
                self.client.delete_table(
                    f"{self.project}.{self.pipeline}.{stage}", not_found_ok=True, timeout=self.timeout
                )
        if winner == token and done is not None:
            return LoadResult("loaded", int(done))
        if done is not None:
            return LoadResult("already_loaded", int(done))
        if newest is not None and newest > req.source_generation:
            return LoadResult("superseded", 0)
        raise RuntimeError(f"{req.object_uri}: the load transaction committed but the ledger has no row; retry")

    def _stage(self, req: LoadRequest) -> str:
        """Load the object into its own staging table with a deterministic job id; returns the table."""
        from google.api_core.exceptions import Conflict
        from google.cloud import bigquery

        job_id = load_job_id(req.object_uri, req.object_generation)
        stage = "_stage_" + job_id
        # The emulator reads Parquet with DuckDB's hive-partition detection and inserts by position, so
        # a 'month=YYYY-MM' folder in the name arrives as a trailing column. Give the staging table those
        # trailing nullable columns; on BigQuery they stay NULL (nullable columns the file lacks).
        hive = [
            bigquery.SchemaField(part.split("=", 1)[0], "STRING", mode="NULLABLE")
            for part in req.object_uri[len("gs://") :].split("/")[1:-1]
            if "=" in part
        ]
        table = bigquery.Table(
            f"{self.project}.{self.pipeline}.{stage}", schema=self.raw_schema(RAW_TABLES[req.kind]) + hive
        )
        self.client.create_table(table, exists_ok=True, timeout=self.timeout)
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
            create_disposition=bigquery.CreateDisposition.CREATE_NEVER,
        )
        try:
            job = self.client.load_table_from_uri(
                req.object_uri, table.reference, job_id=job_id, job_config=config, timeout=self.timeout
            )
            job.result(timeout=self.timeout)
        except Conflict:
            # 409: an earlier attempt ran this job id. Its staging table is gone when that attempt's
            # transaction aborted (the attempt drops it on the way out), so this attempt loads again
            # under an id of its own; the ledger, not the job id, keeps the effect exactly once.
            job = self.client.load_table_from_uri(
                req.object_uri,
                table.reference,
                job_id=f"{job_id}_{uuid.uuid4().hex[:12]}",
                job_config=config,
                timeout=self.timeout,
            )
            job.result(timeout=self.timeout)
        maybe_crash(self.faults, "load.after_job", f"{req.object_uri}#{req.object_generation}")
        staged = job.output_rows  # the staging table is truncated by the load: the rows it holds now
        if staged != req.rows:
            raise ValueError(f"{req.object_uri}: holds {staged} rows, its metadata says {req.rows}")
        return stage

    def _manifest_select(self, req: LoadRequest) -> str:
        m = json.loads(self.lake.read_bytes(req.object_name))
        values = [
            m["batch_id"],
            m["source_uri"],
            int(m["source_generation"]),
            m["state"],
            m["error"],
            m.get("error_code"),
            int(m["rows_read"]),
            int(m["rows_loaded"]),
            int(m["rows_quarantined"]),
            int(m["rows_duplicate"]),
            json.dumps({"partitions": m["partitions"], "quarantine": m["quarantine"]}),
        ]
        names = [c.name for c in TABLES["batches"]]
        exprs = [f"{sql_literal(v)} AS `{n}`" for v, n in zip(values, names)]
        exprs.append(f"TIMESTAMP {sql_literal(m['ingested_at'].replace('T', ' '))} AS `ingested_at`")
        return "SELECT " + ", ".join(exprs)

    def _apply_script(self, req: LoadRequest, source_sql: str, token: str) -> str:
        ledger = self.table(self.pipeline, "load_ledger")
        src, gen = sql_literal(req.source_uri), sql_literal(req.source_generation)
        guard = (
            f"NOT EXISTS (SELECT 1 FROM {ledger} WHERE source_uri = {src} AND source_generation > {gen}) "
            f"AND NOT EXISTS (SELECT 1 FROM {ledger} WHERE {self._key(req)})"
        )
        target = self.table(self.raw, RAW_TABLES[req.kind])
        cols = ", ".join(f"`{c.name}`" for c in TABLES[RAW_TABLES[req.kind]])
        key_rows = f"batch_id = {sql_literal(req.batch_id)}"
        if req.kind == "sales":
            year, month = (int(x) for x in req.partition.split("-"))
            first, last = date(year, month, 1), date(year, month, monthrange(year, month)[1])
            # the invoice_date range touches only this month's partitions (and makes the DELETE a mutation of them)
            key_rows += (
                f" AND invoice_month = {sql_literal(first)}"
                f" AND invoice_date BETWEEN {sql_literal(first)} AND {sql_literal(last)}"
            )
        statements = ["BEGIN TRANSACTION;"]
        for name in RAW_TABLES.values():  # a newer generation of the landing object replaces the older ones
            statements.append(
                f"DELETE FROM {self.table(self.raw, name)} "
                f"WHERE source_uri = {src} AND source_generation < {gen} AND {guard};"
            )
        statements += [
            f"DELETE FROM {target} WHERE {key_rows} AND {guard};",
            f"INSERT INTO {target} ({cols}) SELECT {cols} FROM ({source_sql}) WHERE {guard};",
            f"INSERT INTO {ledger} (batch_id, source_uri, source_generation, kind, `partition`, object_uri, "
            f"object_generation, `rows`, loaded_at, load_token) SELECT {sql_literal(req.batch_id)}, {src}, {gen}, "
            f"{sql_literal(req.kind)}, {sql_literal(req.partition)}, {sql_literal(req.object_uri)}, "
            f"{sql_literal(req.object_generation)}, {sql_literal(req.rows)}, CURRENT_TIMESTAMP(), {sql_literal(token)} "
            f"FROM (SELECT 1) WHERE {guard};",
            "COMMIT TRANSACTION;",
            self._ledger_select(req) + ";",
        ]
        return "\n".join(statements)
