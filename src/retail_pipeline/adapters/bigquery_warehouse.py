"""The cloud warehouse: BigQuery (google-cloud-bigquery), or the BigQuery emulator.

Datasets: ``<prefix>_raw`` (raw tables, created from schema.py before any load: sales_lines is
partitioned by invoice_date (DAY) and clustered by customer_id), ``<prefix>_pipeline`` (load
ledger, transform runs, staging tables) and ``<prefix>_analytics`` (dbt's models).

Exactly-once loading holds by the data itself:

1. a cheap read of the ledger answers ``superseded`` / ``already_loaded`` for most redeliveries;
2. the lake object is loaded with a load job into a staging table; the job id is derived from the
   object and its generation, so on BigQuery a repeated job is rejected (409) and the attempt
   reuses the first job's staging table (the emulator accepts repeated ids: a second guard only);
3. ONE multi-statement transaction applies it. Every statement in it is guarded by "no newer
   generation of this source is in the ledger and this (batch, kind, partition) is not in the
   ledger", so a repeat inside the transaction does nothing; it deletes older generations of the
   same source, replaces the key's rows, inserts the new rows and writes the ledger row (with a
   token unique to this attempt). Afterwards the ledger row's token says who applied it.
   Concurrent duplicates: BigQuery cancels one of two transactions that mutate (DELETE) the same
   table partitions, the cancelled attempt raises and its retry reads ``already_loaded``; the
   emulator serialises transactions. Partition decorators are not used anywhere.

Transform claims: BigQuery has no unique constraints, and appending transactions do not conflict
there, so a guarded INSERT alone is not a lock on BigQuery. The claim is first an object
``_claims/transform/<batch>/<key>`` created through the claims port (the lake bucket) with
``if_generation_match=0``, which Cloud Storage applies atomically: exactly one creator wins, the
others get 412. The strict gateway of the emulator chain enforces the same precondition, so the
local chain runs this very path. A guarded INSERT into ``transform_runs`` records the winner.

Datasets and tables are created by Terraform in GCP (by :meth:`BigQueryWarehouse.provision` on the
emulator chain, acting as the deployer); the functions never create them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas
    import pyarrow

from ..config import Faults
from ..ports import (
    BatchProgress,
    BatchRecord,
    Figures,
    ObjectStore,
    PreconditionFailed,
    RetractResult,
    TransformResult,
)
from ..schema import PIPELINE_TABLES, TABLES, bigquery_json
from . import batch_sql
from .bigquery_loads import BigQueryLoads
from .bigquery_sql import sql_literal
from .lazy import LazyClient

CLAIMS_PREFIX = "_claims/transform/"


class BigQueryWarehouse(BigQueryLoads):
    """BigQuery behind the Warehouse port (see the module docstring for the exactly-once design)."""

    def __init__(
        self,
        project: str,
        prefix: str = "retail",
        *,
        client: Any = None,
        client_factory: Callable[[], Any] | None = None,
        lake: ObjectStore,
        claims: ObjectStore | None = None,
        location: str = "EU",
        timeout: float = 600.0,
        faults: Faults | None = None,
        storage_read_api: bool = True,
    ) -> None:
        self.project = project
        self.prefix = prefix
        self.raw = f"{prefix}_raw"
        self.pipeline = f"{prefix}_pipeline"
        self.analytics = f"{prefix}_analytics"
        self.location = location
        self.timeout = timeout
        self._client = LazyClient(client, client_factory)
        self.lake = lake
        self.claims = claims
        self.faults = faults or Faults()
        self.storage_read_api = storage_read_api  #: BigQuery's gRPC fast path for large reads (not on emulators)
        self.tables = batch_sql.Tables(
            self.table(self.raw, "batches"),
            self.table(self.pipeline, "load_ledger"),
            self.table(self.pipeline, "transform_runs"),
            lambda name: f"`{name}`",
        )

    @property
    def client(self) -> Any:
        return self._client.get()

    # -- plumbing -------------------------------------------------------------------------------
    def table(self, dataset: str, name: str) -> str:
        return f"`{self.project}.{dataset}.{name}`"

    def query(self, sql: str) -> list:
        return list(self.client.query(sql, timeout=self.timeout).result(timeout=self.timeout))

    def _exists(self, dataset: str, name: str) -> bool:
        from google.api_core.exceptions import NotFound

        try:
            self.client.get_table(f"{self.project}.{dataset}.{name}", timeout=self.timeout)
            return True
        except NotFound:
            return False

    # -- tables ---------------------------------------------------------------------------------
    @contextmanager
    def session(self) -> Iterator[None]:
        yield  # every call is its own request: nothing to hold

    def release(self) -> None:
        pass

    def provision(self) -> None:
        """Datasets and tables, partitioned and clustered, as Terraform makes them (the emulator chain)."""
        from google.cloud import bigquery

        for dataset in (self.raw, self.pipeline, self.analytics):
            ds = bigquery.Dataset(f"{self.project}.{dataset}")
            ds.location = self.location
            self.client.create_dataset(ds, exists_ok=True, timeout=self.timeout)
        for name in TABLES:
            table = bigquery.Table(f"{self.project}.{self.raw}.{name}", schema=self.raw_schema(name))
            if name == "sales_lines":
                table.time_partitioning = bigquery.TimePartitioning(
                    type_=bigquery.TimePartitioningType.DAY, field="invoice_date"
                )
                table.clustering_fields = ["customer_id"]
            elif name == "quarantine":
                table.clustering_fields = ["batch_id"]
            self.client.create_table(table, exists_ok=True, timeout=self.timeout)
        for name in PIPELINE_TABLES:
            table = bigquery.Table(f"{self.project}.{self.pipeline}.{name}", schema=self.raw_schema(name))
            table.clustering_fields = ["batch_id"]
            self.client.create_table(table, exists_ok=True, timeout=self.timeout)

    @staticmethod
    def raw_schema(name: str) -> list:
        from google.cloud import bigquery

        return [bigquery.SchemaField.from_api_repr(field) for field in bigquery_json(name)]

    # -- fan-in ---------------------------------------------------------------------------------
    def batch_progress(self, batch_id: str) -> BatchProgress:
        ledger = self.table(self.pipeline, "load_ledger")
        b = sql_literal(batch_id)
        rows = self.query(
            f"SELECT state, `partitions`, source_uri, source_generation FROM "
            f"{self.table(self.raw, 'batches')} WHERE batch_id = {b} LIMIT 1"
        )
        row = rows[0] if rows else None
        loaded = {
            (k, p): int(r)
            for k, p, r in self.query(
                f"SELECT kind, `partition`, `rows` FROM {ledger} WHERE batch_id = {b} AND kind <> 'manifest'"
            )
        }
        expected: dict[tuple[str, str], int] = {}
        if row is not None:
            expected = BatchProgress.expected_from_layout(row[1])
            newest = self.query(f"SELECT {batch_sql.newest_generation_sql(self.tables, sql_literal(row[2]))}")[0][0]
            superseded = newest is not None and newest > row[3]
        else:
            newer = self.query(
                f"SELECT count(*) FROM {ledger} WHERE source_uri IN "
                f"(SELECT source_uri FROM {ledger} WHERE batch_id = {b}) AND batch_id <> {b}"
            )[0][0]
            superseded = newer > 0 and not loaded
        return BatchProgress(batch_id, row is not None, row[0] if row else None, expected, loaded, superseded)

    def claim_transform(self, batch_id: str, claim_key: str) -> bool:
        """True for exactly one caller per (batch_id, claim_key) (see the module docstring)."""
        token = uuid.uuid4().hex
        if self.claims is not None:
            try:
                self.claims.put(
                    f"{CLAIMS_PREFIX}{batch_id}/{claim_key}",
                    json.dumps({"token": token}).encode(),
                    content_type="application/json",
                    if_generation_match=0,
                )
            except PreconditionFailed:
                return False
        runs = self.table(self.pipeline, "transform_runs")
        key = f"batch_id = {sql_literal(batch_id)} AND claim_key = {sql_literal(claim_key)}"
        self.query(
            "BEGIN TRANSACTION;\n"
            f"INSERT INTO {runs} (batch_id, claim_key, state, started_at, claim_token) "
            f"SELECT {sql_literal(batch_id)}, {sql_literal(claim_key)}, 'running', CURRENT_TIMESTAMP(), "
            f"{sql_literal(token)} FROM (SELECT 1) WHERE NOT EXISTS (SELECT 1 FROM {runs} WHERE {key});\n"
            "COMMIT TRANSACTION;"
        )
        winners = self.query(f"SELECT claim_token FROM {runs} WHERE {key} ORDER BY started_at, claim_token LIMIT 1")
        return bool(winners) and winners[0][0] == token

    def finish_transform(self, batch_id: str, claim_key: str, result: TransformResult) -> None:
        finished = "NULL" if result.status == "started" else "CURRENT_TIMESTAMP()"  # a started job records its end
        self.query(
            f"UPDATE {self.table(self.pipeline, 'transform_runs')} SET state = {sql_literal(result.status)}, "
            f"finished_at = {finished}, tests_passed = {sql_literal(result.tests_passed)}, "
            f"tests_failed = {sql_literal(result.tests_failed)}, models_built = {sql_literal(result.models_built)}, "
            f"seconds = {sql_literal(float(result.seconds))}, error = {sql_literal(result.error)}, "
            f"execution = {sql_literal(result.execution)} "
            f"WHERE batch_id = {sql_literal(batch_id)} AND claim_key = {sql_literal(claim_key)}"
        )

    def release_transform(self, batch_id: str, claim_key: str) -> None:
        self.query(
            f"DELETE FROM {self.table(self.pipeline, 'transform_runs')} "
            f"WHERE batch_id = {sql_literal(batch_id)} AND claim_key = {sql_literal(claim_key)}"
        )
        if self.claims is not None:
            self.claims.delete(f"{CLAIMS_PREFIX}{batch_id}/{claim_key}")

    # -- reading --------------------------------------------------------------------------------
    def claimable_batches(self, exclude: str = "") -> list[BatchProgress]:
        return batch_sql.claimable_from_rows(self.query(batch_sql.claimable_sql(self.tables, sql_literal(exclude))))

    def runs(self) -> list[dict]:
        runs = [dict(zip(batch_sql.RUN_COLUMNS, r)) for r in self.query(batch_sql.runs_sql(self.tables))]
        for run in runs:
            for stamp in ("started_at", "finished_at"):
                run[stamp] = run[stamp].isoformat(sep=" ") if run[stamp] is not None else None
        return runs

    def batch_records(self) -> list[BatchRecord]:
        return batch_sql.records(
            self.query(batch_sql.batches_sql(self.tables)),
            self.query(batch_sql.ledger_sql(self.tables)),
            self.runs(),
            self.retracted_batches(),
        )

    # -- retraction (bigquery_retract.py) -------------------------------------------------------
    def retracted_batches(self) -> set[str]:
        from . import bigquery_retract

        return bigquery_retract.retracted_batches(self)

    def retract(self, target: str, *, who: str, why: str) -> RetractResult:
        from . import bigquery_retract

        return bigquery_retract.retract(self, target, who=who, why=why)

    def figures(self) -> Figures:
        if not self._exists(self.analytics, "fct_sales_lines"):
            return Figures(0, Decimal(0))
        rows, net = self.query(
            f"SELECT count(*), coalesce(sum(quantity * unit_price), 0) "
            f"FROM {self.table(self.analytics, 'fct_sales_lines')}"
        )[0]
        return Figures(int(rows), Decimal(net))

    # -- analytics layer (issue 13): one model of <prefix>_analytics, as a DataFrame or Arrow ------
    def read_relation(
        self, name: str, *, columns: list[str] | None = None, where: list[tuple[str, str, object]] | None = None
    ) -> pandas.DataFrame:
        """Rows of ``<prefix>_analytics.<name>``. Filters are ANDed query parameters, so a filter on
        the fact's ``invoice_date`` prunes its day partitions; dtypes per analytics_frames."""
        from ..analytics_frames import frame_from_arrow

        return frame_from_arrow(self.read_relation_arrow(name, columns=columns, where=where))

    def read_relation_arrow(
        self, name: str, *, columns: list[str] | None = None, where: list[tuple[str, str, object]] | None = None
    ) -> pyarrow.Table:
        """Rows of ``<prefix>_analytics.<name>`` as the client's Arrow (NUMERIC is decimal128(38, 9))."""
        from google.cloud import bigquery

        from ..analytics_frames import RelationNotFound, check_read, parameter_type

        check_read(name, columns, where)
        if not self._exists(self.analytics, name):
            raise RelationNotFound(f"BigQuery has no {self.project}.{self.analytics}.{name}")
        select = ", ".join(f"`{c}`" for c in columns) if columns else "*"
        sql = f"SELECT {select} FROM {self.table(self.analytics, name)}"
        params = [
            bigquery.ScalarQueryParameter(f"p{i}", parameter_type(value), value)
            for i, (_, _, value) in enumerate(where or [])
        ]
        if where:
            sql += " WHERE " + " AND ".join(
                f"`{column}` {operator} @p{i}" for i, (column, operator, _) in enumerate(where)
            )
        job = self.client.query(sql, job_config=bigquery.QueryJobConfig(query_parameters=params), timeout=self.timeout)
        rows = job.result(timeout=self.timeout)
        # the Storage Read API (gRPC) is BigQuery's fast path for large results; the emulator serves REST only
        return rows.to_arrow(create_bqstorage_client=self.storage_read_api)
