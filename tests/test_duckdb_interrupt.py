"""Ctrl-C or SIGTERM while the embedded warehouse runs a query stops the process, as it does anywhere
else. DuckDB runs the signal's handler during the query, ends the query with RuntimeError("Query
interrupted") and keeps the handler's exception only as its cause: a load stopped that way used to
fail as an ordinary error (HTTP 500), be retried, and the run went on to the end."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from retail_pipeline.adapters.duckdb_warehouse import DuckDBWarehouse
from retail_pipeline.config import Limits, Settings
from retail_pipeline.context import Context
from retail_pipeline.ingest import ingest_object
from retail_pipeline.ports import LoadRequest
from retail_pipeline.stages import lake_object_kind

#: about 17 s on one thread, unless stopped. On one thread DuckDB checks for signals between its tasks
#: every time (in 15 tries each: never missed on one thread, missed 5 times on two, the handler then
#: running only after the query): the loads run on one thread, and so do these queries.
LONG_QUERY = "SELECT count(*) FROM range(5000000000) t(i) WHERE i % 7 = 3"


def _stop_cli(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # what the CLI's SIGTERM handler does (cli.py)


@contextmanager
def signal_after(seconds: float, handler: Callable[[int, Any], Any]) -> Iterator[None]:
    """SIGUSR1 with `handler` sent to this process after `seconds` (handlers run in the main thread)."""
    assert threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGUSR1, handler)
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGUSR1))
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        signal.signal(signal.SIGUSR1, previous)


@pytest.mark.parametrize(
    ("handler", "stop"),
    [(_stop_cli, SystemExit), (signal.default_int_handler, KeyboardInterrupt)],
    ids=["sigterm-in-the-cli", "ctrl-c"],
)
def test_a_signal_during_a_query_stops_the_caller(tmp_path, handler, stop):
    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb", lake=None)  # type: ignore[arg-type]
    warehouse.provision()
    with pytest.raises(stop) as raised, warehouse.connect() as con:
        con.execute("SET threads = 1")
        with signal_after(0.3, handler):
            con.execute(LONG_QUERY).fetchall()
    if stop is SystemExit:
        assert raised.value.code == 128 + signal.SIGUSR1
    assert "Query interrupted" in str(raised.value.__cause__)


def test_a_load_stopped_by_a_signal_stops_and_leaves_nothing_half_loaded(tmp_path, small_workbook, monkeypatch):
    ctx = Context(Settings.from_env(tmp_path / "home", environ={}))
    ctx.provision()
    batch = ingest_object(small_workbook, "book.xlsx", ctx.landing.uri("book.xlsx"), 1, ctx.lake, Limits())
    name = batch.partitions[0]["object"]
    request = LoadRequest.for_object(lake_object_kind(name), ctx.lake.stat(name), ctx.lake.uri(name))
    warehouse = ctx.warehouse
    insert = DuckDBWarehouse._insert_parquet

    def slow_insert(con: Any, req: LoadRequest, path: Any) -> int:
        rows = insert(con, req, path)
        con.execute(LONG_QUERY).fetchall()  # still in the load's transaction when the signal comes
        return rows

    monkeypatch.setattr(DuckDBWarehouse, "_insert_parquet", staticmethod(slow_insert))
    with pytest.raises(SystemExit), signal_after(0.5, _stop_cli):
        warehouse.load_object(request)
    monkeypatch.setattr(DuckDBWarehouse, "_insert_parquet", staticmethod(insert))
    with warehouse.connect() as con:  # the transaction was rolled back: no rows, no ledger entry
        assert con.execute("SELECT count(*) FROM raw.sales_lines").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM pipeline.load_ledger").fetchone()[0] == 0
    result = warehouse.load_object(request)  # the event's retry, in the next run
    assert (result.status, result.rows) == ("loaded", batch.partitions[0]["rows"])
