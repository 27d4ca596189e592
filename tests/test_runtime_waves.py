"""How the local runtime delivers a wave of events: over HTTP several at once per function (as many
as it has instances, as Eventarc does), in process one at a time with the warehouse kept open for
the wave (a DuckDB session), and what a session means for other processes."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb

from retail_pipeline.adapters.duckdb_warehouse import DuckDBWarehouse
from retail_pipeline.adapters.local_store import FolderStore
from retail_pipeline.config import Limits, Settings
from retail_pipeline.context import Context
from retail_pipeline.ingest import ingest_object
from retail_pipeline.pipeline import SUBSCRIPTION
from retail_pipeline.ports import LoadRequest
from retail_pipeline.runtime import INSTANCES, LocalRuntime
from retail_pipeline.stages import lake_object_kind

OPEN_FROM_ANOTHER_PROCESS = """
import sys, duckdb
try:
    duckdb.connect(sys.argv[1]).close()
except duckdb.IOException as exc:
    print("locked" if "lock" in str(exc).lower() else f"other: {exc}")
else:
    print("opened")
"""


def other_process_opens(path: Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", OPEN_FROM_ANOTHER_PROCESS, str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_a_session_keeps_the_file_open_until_it_ends_or_is_released(tmp_path):
    db = tmp_path / "warehouse.duckdb"
    warehouse = DuckDBWarehouse(db, lake=FolderStore(tmp_path / "lake"))
    warehouse.provision()
    assert other_process_opens(db) == "opened"  # no session: every call closes the file again
    with warehouse.session():
        assert warehouse.batch_progress("nothing-yet").state is None
        assert other_process_opens(db) == "locked"  # held between calls
        with warehouse.session():  # nested: the outer one still holds it afterwards
            assert warehouse.claim_transform("b1", "initial")
        assert other_process_opens(db) == "locked"
        warehouse.release()  # what in-process dbt asks for before it opens the file
        assert other_process_opens(db) == "opened"
        assert not warehouse.claim_transform("b1", "initial")  # the next call opens it again: same data
        assert other_process_opens(db) == "locked"
    assert other_process_opens(db) == "opened"
    assert [r["batch_id"] for r in warehouse.runs()] == ["b1"]


def test_a_session_writes_its_loads_into_the_file_as_it_lets_go(tmp_path, small_workbook):
    """A session's commits leave the WAL alone (DuckDB's default checkpoints every 16 MB, costlier the
    bigger the table); the session writes it into the file once, as it ends or is released, so the
    process that opens the file next (dbt) has no WAL to replay."""
    ctx = Context(Settings.from_env(tmp_path / "home", environ={}))
    ctx.provision()
    batch = ingest_object(small_workbook, "book.xlsx", ctx.landing.uri("book.xlsx"), 1, ctx.lake, Limits())
    names = [f"manifests/{batch.batch_id}.json"] + [p["object"] for p in batch.partitions]
    warehouse = ctx.warehouse
    wal = Path(f"{warehouse.path}.wal")
    with warehouse.session():
        for name in names:
            info = ctx.lake.stat(name)
            assert (
                warehouse.load_object(LoadRequest.for_object(lake_object_kind(name), info, ctx.lake.uri(name))).status
                == "loaded"
            )
        assert wal.exists() and wal.stat().st_size > 0  # the loads are in the WAL so far
        warehouse.release()  # what the transformer asks for before dbt opens the file
        assert not wal.exists() or wal.stat().st_size == 0
        assert warehouse.batch_progress(batch.batch_id).complete  # the next call opens it again
    assert not wal.exists() or wal.stat().st_size == 0
    with duckdb.connect(str(warehouse.path), read_only=True) as con:  # as another process would
        assert con.execute("SELECT count(*) FROM raw.sales_lines").fetchone()[0] == batch.rows_loaded > 0


class CountingApps:
    """Function apps reached "over HTTP" (not in this process): each delivery takes a while; the
    most deliveries in flight at once, per target, are counted."""

    in_process = False

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.lock = threading.Lock()
        self.in_flight: dict[str, int] = {}
        self.most: dict[str, int] = {}
        self.subjects: list[str] = []

    def instances(self, target: str) -> int:
        return INSTANCES[target]

    def deliver(self, target, event):
        with self.lock:
            self.in_flight[target] = self.in_flight.get(target, 0) + 1
            self.most[target] = max(self.most.get(target, 0), self.in_flight[target])
            self.subjects.append(event["subject"])
        time.sleep(self.seconds)
        with self.lock:
            self.in_flight[target] -= 1
        return 200, "{}"


def context_with_landing_objects(tmp_path: Path, count: int) -> Context:
    """An embedded chain's context with ``count`` objects in its landing bucket (never parsed here)."""
    ctx = Context(Settings.from_env(tmp_path / "home", environ={}))
    ctx.provision()
    for i in range(count):
        (tmp_path / f"book_{i}.xlsx").write_bytes(b"not parsed here: the apps only count")
        ctx.landing.put(f"book_{i}.xlsx", tmp_path / f"book_{i}.xlsx")
    return ctx


def test_storage_events_go_to_as_many_instances_at_once_and_each_once(tmp_path):
    ctx = context_with_landing_objects(tmp_path, 7)
    apps = CountingApps(seconds=0.4)
    runtime = LocalRuntime(ctx, apps, subscription=ctx.bus.subscribe(SUBSCRIPTION))
    started = time.monotonic()
    stats = runtime.run_until_idle(timeout=60)
    wall = time.monotonic() - started
    assert sorted(apps.subjects) == [f"objects/book_{i}.xlsx" for i in range(7)]  # each event once
    assert apps.most == {"ingest": INSTANCES["ingest"]} and INSTANCES["ingest"] > 1
    assert stats.deliveries["ingest"] == 7 and not stats.failures
    # 7 deliveries of 0.4 s, INSTANCES["ingest"] at a time: the stage's seconds are its wall time
    # with a delivery in flight, not the deliveries' sum
    waves = -(-7 // INSTANCES["ingest"])
    assert waves * 0.4 <= stats.seconds["ingest"] <= wall < 7 * 0.4


def test_in_process_apps_get_one_event_at_a_time(tmp_path):
    ctx = context_with_landing_objects(tmp_path, 3)
    apps = CountingApps(seconds=0.05)
    apps.in_process = True
    apps.instances = lambda target: 1  # type: ignore[method-assign]
    LocalRuntime(ctx, apps, subscription=ctx.bus.subscribe(SUBSCRIPTION)).run_until_idle(timeout=60)
    assert apps.most == {"ingest": 1} and len(apps.subjects) == 3


def test_a_function_imports_its_client_libraries_at_start_up(tmp_path):
    """What a function server imports before it forks its instances: the libraries of the adapters its
    settings name, and nothing for the embedded chain; a setting in error is left to the first event."""
    from retail_pipeline.adapters import import_client_libraries

    embedded = Settings.from_env(tmp_path / "home", environ={})
    assert import_client_libraries(embedded) == []
    cloud = embedded.with_changes(
        landing="gs://landing", lake="gs://lake", warehouse="bigquery://p/retail", bus="pubsub://p/t"
    )
    assert import_client_libraries(cloud) == ["google.cloud.storage", "google.cloud.bigquery", "google.cloud.pubsub_v1"]
    home = tmp_path / "home"
    assert warm_up_in_a_new_process(home, {"RETAIL_PIPELINE_LANDING": "s3://elsewhere"}) == "[]"
    assert warm_up_in_a_new_process(home, {"RETAIL_PIPELINE_LANDING": "gs://landing"}) == "['google.cloud.storage']"


def warm_up_in_a_new_process(home: Path, settings: dict[str, str]) -> str:
    """What context.warm_up() returns in a fresh interpreter (nothing imported yet) with these settings."""
    proc = subprocess.run(
        [sys.executable, "-c", "from retail_pipeline import context; print(context.warm_up())"],
        env={"PATH": "/usr/bin:/bin", "RETAIL_PIPELINE_HOME": str(home), **settings},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_threads_of_one_process_open_and_close_the_file_at_once_without_conflict(tmp_path):
    """A function server's threads each open the file per call: one opening it while another closes
    the last connection once found the closing database still attached ("Unique file handle conflict")."""
    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb", lake=FolderStore(tmp_path / "lake"))
    warehouse.provision()
    errors: list[str] = []
    counts: list[int] = []

    def calls() -> None:
        for _ in range(300):
            try:
                counts.append(len(warehouse.batch_records()))
            except Exception as exc:  # every error is the failure this test looks for
                errors.append(str(exc))

    threads = [threading.Thread(target=calls) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert counts == [0] * 1200
