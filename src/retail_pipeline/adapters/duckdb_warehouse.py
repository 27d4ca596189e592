"""The embedded warehouse: one DuckDB file. Raw tables in schema ``raw``, bookkeeping in
``pipeline``, dbt models in ``analytics``. Connections are short-lived, so dbt (run in the same
process) and the functions can take turns on the file."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas
    import pyarrow

import duckdb

from ..config import Faults
from ..ports import (
    BatchProgress,
    BatchRecord,
    Figures,
    ObjectStore,
    RetractResult,
    TransformResult,
)
from ..schema import duckdb_ddl
from . import batch_sql, retract_sql
from .duckdb_loads import DuckDBLoads, rollback
from .duckdb_sql import inline, sql_literal

TABLES = batch_sql.Tables("raw.batches", "pipeline.load_ledger", "pipeline.transform_runs", lambda name: f'"{name}"')
RETRACT = retract_sql.RetractTables(
    "raw.batches",
    "pipeline.load_ledger",
    "raw.sales_lines",
    "raw.quarantine",
    "pipeline.retractions",
    lambda name: f'"{name}"',
)


class WarehouseBusy(RuntimeError):
    """The DuckDB file is locked by another process: transient, the event is retried."""


#: DuckDB keeps one database per file and process; a thread opening the file while another closes
#: its last connection can find the closing database still attached ("Unique file handle conflict").
#: Opening and closing are quick, so this process does them one at a time.
_OPEN_CLOSE = threading.Lock()

#: WAL size at which a commit checkpoints while a session keeps the file open; the session then
#: checkpoints once as it lets go of the file, so no other process has a long WAL to replay.
#: DuckDB's default (16 MB) checkpoints every 80,000 lake rows or so, and those checkpoints cost more
#: the bigger the table: the load stage of ten workbooks dropped at once took 20.8–23.5 s with it, 13.0–16.2 s
#: with this (docs/benchmarks.md). The WAL's rows are held in memory until then: 128 MB of WAL is
#: about 640,000 lake rows.
SESSION_CHECKPOINT_THRESHOLD = "128MB"


class DuckDBWarehouse(DuckDBLoads):
    """One DuckDB file behind the Warehouse port; lake objects are read through the lake port."""

    def __init__(self, path: str | Path, *, lake: ObjectStore, faults: Faults | None = None) -> None:
        self.path = Path(path)
        self.lake = lake
        self.faults = faults or Faults()
        self._provisioned = False
        self._sessions = 0  #: nested session() blocks running
        self._anchor: Any = None  #: the connection a session keeps open
        self._anchor_lock = threading.Lock()

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[Any]:  # DuckDB's own types say every row may be None
        if not self._provisioned and not read_only:
            self._provisioned = True  # the embedded warehouse has no Terraform: it makes its own tables
            self.provision()
        if self._sessions:
            with self._anchor_lock:
                if self._anchor is None:
                    self._anchor = self._open(read_only=False)
                    self._anchor.execute(f"SET checkpoint_threshold = '{SESSION_CHECKPOINT_THRESHOLD}'")
            read_only = False  # one process, one configuration: the session's database is read-write
        con = self._open(read_only)  # in a session: a new connection to the database already open
        try:
            yield con
        except Exception as exc:
            stop = _stop_behind(exc)
            if stop is not None:  # Ctrl-C or SIGTERM interrupted a query: the process stops, as asked
                raise type(stop)(*stop.args) from exc
            raise
        finally:
            with _OPEN_CLOSE:
                con.close()

    def _open(self, read_only: bool) -> Any:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + 30
        while True:
            try:
                with _OPEN_CLOSE:
                    return duckdb.connect(str(self.path), read_only=read_only and self.path.exists())
            except duckdb.IOException as exc:  # another process holds the write lock
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise WarehouseBusy(str(exc)) from exc
                time.sleep(0.2)

    @contextmanager
    def session(self) -> Iterator[None]:
        """Keep the file open in this process while the block runs. DuckDB keeps one database per file
        and process while any connection to it is open, so each call's connection then costs well
        under a millisecond instead of opening the file (about 20 ms: most of a small load's time)."""
        self._sessions += 1
        try:
            yield
        finally:
            self._sessions -= 1
            if not self._sessions:
                self.release()

    def release(self) -> None:
        with self._anchor_lock:
            anchor, self._anchor = self._anchor, None
            if anchor is not None:
                with _OPEN_CLOSE:
                    try:
                        _checkpoint(anchor)
                    finally:
                        anchor.close()  # the database closes with its last connection

    def provision(self) -> None:
        self._provisioned = True
        with self.connect() as con:
            con.execute("CREATE SCHEMA IF NOT EXISTS raw; CREATE SCHEMA IF NOT EXISTS pipeline")
            con.execute(duckdb_ddl("sales_lines", "raw.sales_lines"))
            con.execute(duckdb_ddl("quarantine", "raw.quarantine"))
            con.execute(duckdb_ddl("batches", "raw.batches"))
            # the primary keys make a repeated load or claim a conflict (DuckDB enforces them; BigQuery has none)
            con.execute(duckdb_ddl("load_ledger", "pipeline.load_ledger", ("batch_id", "kind", "partition")))
            con.execute(duckdb_ddl("transform_runs", "pipeline.transform_runs", ("batch_id", "claim_key")))
            con.execute(duckdb_ddl("retractions", "pipeline.retractions", ("batch_id",)))

    def batch_progress(self, batch_id: str) -> BatchProgress:
        with self.connect() as con:
            row = con.execute(
                inline(
                    "SELECT state, partitions, source_uri, source_generation FROM raw.batches WHERE batch_id = ?",
                    [batch_id],
                )
            ).fetchone()
            loaded = {
                (k, p): r
                for k, p, r in con.execute(
                    inline(
                        "SELECT kind, partition, rows FROM pipeline.load_ledger WHERE batch_id = ? AND kind <> 'manifest'",
                        [batch_id],
                    )
                ).fetchall()
            }
            superseded = False
            expected: dict[tuple[str, str], int] = {}
            if row is not None:
                expected = BatchProgress.expected_from_layout(row[1])
                newest = con.execute(
                    f"SELECT {batch_sql.newest_generation_sql(TABLES, sql_literal(row[2]))}"
                ).fetchone()[0]
                superseded = newest is not None and newest > row[3]
            else:
                newer = con.execute(
                    inline(
                        "SELECT count(*) FROM pipeline.load_ledger l WHERE l.source_uri IN "
                        "(SELECT source_uri FROM pipeline.load_ledger WHERE batch_id = ?) AND l.batch_id <> ?",
                        [batch_id, batch_id],
                    )
                ).fetchone()[0]
                superseded = newer > 0 and not loaded
        return BatchProgress(batch_id, row is not None, row[0] if row else None, expected, loaded, superseded)

    def claim_transform(self, batch_id: str, claim_key: str) -> bool:
        with self.connect() as con:
            try:
                inserted = con.execute(
                    inline(
                        "INSERT INTO pipeline.transform_runs (batch_id, claim_key, state, started_at) "
                        "VALUES (?, ?, 'running', now()) ON CONFLICT DO NOTHING RETURNING batch_id",
                        [batch_id, claim_key],
                    )
                ).fetchall()
            except (duckdb.ConstraintException, duckdb.TransactionException):
                return False  # a concurrent claim committed the same key first
        return bool(inserted)

    def finish_transform(self, batch_id: str, claim_key: str, result: TransformResult) -> None:
        with self.connect() as con:
            con.execute(
                inline(
                    "UPDATE pipeline.transform_runs SET state = ?, finished_at = CASE WHEN ? = 'started' THEN NULL "
                    "ELSE now() END, tests_passed = ?, tests_failed = ?, models_built = ?, seconds = ?, error = ?, "
                    "execution = ? WHERE batch_id = ? AND claim_key = ?",
                    [
                        result.status,
                        result.status,
                        result.tests_passed,
                        result.tests_failed,
                        result.models_built,
                        result.seconds,
                        result.error,
                        result.execution,
                        batch_id,
                        claim_key,
                    ],
                )
            )

    def release_transform(self, batch_id: str, claim_key: str) -> None:
        with self.connect() as con:
            con.execute(
                inline(
                    "DELETE FROM pipeline.transform_runs WHERE batch_id = ? AND claim_key = ?", [batch_id, claim_key]
                )
            )

    def claimable_batches(self, exclude: str = "") -> list[BatchProgress]:
        with self.connect() as con:
            sql = batch_sql.claimable_sql(TABLES, sql_literal(exclude))
            return batch_sql.claimable_from_rows(con.execute(sql).fetchall())

    def runs(self) -> list[dict]:
        with self.connect() as con:
            return self._runs(con)

    @staticmethod
    def _runs(con: Any) -> list[dict]:
        runs = [dict(zip(batch_sql.RUN_COLUMNS, r)) for r in con.execute(batch_sql.runs_sql(TABLES)).fetchall()]
        for run in runs:
            for stamp in ("started_at", "finished_at"):
                run[stamp] = str(run[stamp]) if run[stamp] is not None else None
        return runs

    def batch_records(self) -> list[BatchRecord]:
        with self.connect() as con:
            retracted = {r[0] for r in con.execute("SELECT batch_id FROM pipeline.retractions").fetchall()}
            return batch_sql.records(
                con.execute(batch_sql.batches_sql(TABLES)).fetchall(),
                con.execute(batch_sql.ledger_sql(TABLES)).fetchall(),
                self._runs(con),
                retracted,
            )

    def retracted_batches(self) -> set[str]:
        with self.connect() as con:
            return {r[0] for r in con.execute("SELECT batch_id FROM pipeline.retractions").fetchall()}

    def retract(self, target: str, *, who: str, why: str) -> RetractResult:
        import uuid

        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                plan_rows = con.execute(retract_sql.plan_sql(RETRACT, sql_literal(target))).fetchall()
                pending = [sql_literal(r[0]) for r in plan_rows if not r[3]]
                counts = con.execute(retract_sql.rows_sql(RETRACT, ", ".join(pending))).fetchall() if pending else []
                plan = retract_sql.plan(target, plan_rows, counts)
                if plan.batches:
                    for statement in retract_sql.apply_statements(
                        RETRACT,
                        plan,
                        retraction_id=uuid.uuid4().hex,
                        who=who,
                        why=why,
                        literal=sql_literal,
                        now="now()",
                    ):
                        con.execute(statement)
                con.execute("COMMIT")
            except BaseException:
                rollback(con)
                raise
        return plan.result

    def figures(self) -> Figures:
        with self.connect() as con:
            exists = con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'analytics' "
                "AND table_name = 'fct_sales_lines'"
            ).fetchone()[0]
            if not exists:
                return Figures(0, Decimal(0))
            rows, net = con.execute(
                "SELECT count(*), coalesce(sum(quantity * unit_price), 0) FROM analytics.fct_sales_lines"
            ).fetchone()
        return Figures(int(rows), Decimal(net))

    # -- analytics layer (issue 13): one model of the schema dbt writes to, as a DataFrame or Arrow
    ANALYTICS_SCHEMA = "analytics"  #: the `schema` of the local output in dbt/profiles.yml

    def read_relation(
        self, name: str, *, columns: list[str] | None = None, where: list[tuple[str, str, object]] | None = None
    ) -> pandas.DataFrame:
        """Rows of ``analytics.<name>`` (filters ANDed, as parameters); dtypes per analytics_frames."""
        from ..analytics_frames import frame_from_arrow

        return frame_from_arrow(self.read_relation_arrow(name, columns=columns, where=where))

    def read_relation_arrow(
        self, name: str, *, columns: list[str] | None = None, where: list[tuple[str, str, object]] | None = None
    ) -> pyarrow.Table:
        """Rows of ``analytics.<name>`` as DuckDB hands them to Arrow (filters ANDed, as parameters)."""
        from ..analytics_frames import RelationNotFound, check_read

        check_read(name, columns, where)
        if not self.path.exists():
            raise RelationNotFound(f"no warehouse at {self.path}")
        select = ", ".join(f'"{c}"' for c in columns) if columns else "*"
        sql = f'SELECT {select} FROM "{self.ANALYTICS_SCHEMA}"."{name}"'
        if where:
            sql += " WHERE " + " AND ".join(f'"{column}" {operator} ?' for column, operator, _ in where)
        params = [value for _, _, value in where or []]

        def read(con: Any) -> pyarrow.Table:
            # no parameter here: binding one makes DuckDB's client import pandas (0.4 s)
            tables = con.execute(
                f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{self.ANALYTICS_SCHEMA}'"
            ).fetchall()
            if (name,) not in tables:
                raise RelationNotFound(f"{self.path} has no {self.ANALYTICS_SCHEMA}.{name}")
            return con.execute(sql, params).to_arrow_table()

        try:
            with self.connect(read_only=True) as con:
                return read(con)
        except duckdb.ConnectionException as exc:
            # dbt-duckdb in this process still holds the file read-write: connect as it did
            if "different configuration" not in str(exc):
                raise
            with self.connect() as con:
                return read(con)


def _checkpoint(con: Any) -> None:
    """Write what the session's commits left in the WAL into the file, on every core (a load sets
    the database to one thread). Should DuckDB refuse because of a transaction still running in
    another thread, the WAL stays for the next checkpoint, as it would without this."""
    try:
        con.execute("RESET threads")
        con.execute("CHECKPOINT")
    except duckdb.TransactionException:
        pass


def _stop_behind(exc: BaseException) -> SystemExit | KeyboardInterrupt | None:
    """The Ctrl-C or SIGTERM (KeyboardInterrupt, or the CLI's SystemExit) behind an error, if any.

    A signal's handler runs while DuckDB executes a query in the main thread; DuckDB then ends the
    query with RuntimeError("Query interrupted") and keeps the handler's exception only as its
    cause, so an event handler that failed this way would be retried instead of the process stopping.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, (SystemExit, KeyboardInterrupt)):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
