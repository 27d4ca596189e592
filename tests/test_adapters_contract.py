"""One contract per port, run against the embedded adapter and the cloud adapter on its emulator.

Parametrised like dlt's destination tests: ``embedded`` (folder / spool / DuckDB) and
``emulator`` (google-cloud-storage on the GCS emulator, google-cloud-pubsub on Google's Pub/Sub
emulator, google-cloud-bigquery on bqemulator).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from retail_pipeline.ports import LoadRequest, TransformResult

BACKENDS = ["embedded", pytest.param("emulator", marks=pytest.mark.emulator)]


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    if request.param == "emulator":
        request.getfixturevalue("emulator_env")
    return request.param


@pytest.fixture
def settings(backend, home):
    """Settings read from this test's environment (the emulators' endpoints for 'emulator')."""
    from retail_pipeline.config import Settings

    return Settings.from_env(home)


def make_store(backend: str, tmp_path: Path, name: str, settings):
    from retail_pipeline.adapters import open_store

    store = open_store(str(tmp_path / name) if backend == "embedded" else f"gs://{name}", settings)
    store.provision()
    return store


# -- object store ------------------------------------------------------------------------------
def test_store_put_stat_read_list_delete(backend, settings, tmp_path, unique_name):
    store = make_store(backend, tmp_path, f"{unique_name}-bucket", settings)
    info = store.put("a/b.json", b'{"x": 1}', content_type="application/json", metadata={"batch_id": "b1", "rows": "3"})
    assert info.bucket == store.bucket and info.name == "a/b.json" and info.size == 8
    stat = store.stat("a/b.json")
    assert stat.generation == info.generation
    assert stat.metadata == {"batch_id": "b1", "rows": "3"}
    assert stat.content_type == "application/json"
    assert store.read_bytes("a/b.json") == b'{"x": 1}'
    second = store.put("a/b.json", b"second version")
    assert second.generation > info.generation
    assert store.stat("a/b.json").generation == second.generation
    store.put("c.txt", b"other")
    assert [o.name for o in store.list("a/")] == ["a/b.json"]
    assert sorted(o.name for o in store.list()) == ["a/b.json", "c.txt"]
    copy = store.download("a/b.json", tmp_path / "dl")
    assert copy.read_bytes() == b"second version"
    store.delete("a/b.json")
    store.delete("a/b.json")  # deleting twice is harmless
    assert store.stat("a/b.json") is None
    assert [o.name for o in store.list()] == ["c.txt"]


def test_store_uri_names_the_object(backend, settings, tmp_path, unique_name):
    store = make_store(backend, tmp_path, f"{unique_name}-bucket", settings)
    uri = store.uri("sales/month=2011-01/x.parquet")
    if backend == "emulator":
        assert uri == f"gs://{unique_name}-bucket/sales/month=2011-01/x.parquet"
    else:
        assert uri == (tmp_path / f"{unique_name}-bucket" / "sales/month=2011-01/x.parquet").as_uri()


def test_store_uploads_a_file_from_disk(backend, settings, tmp_path, unique_name):
    store = make_store(backend, tmp_path, f"{unique_name}-bucket", settings)
    source = tmp_path / "book.bin"
    payload = bytes(range(256)) * 4000  # 1 MB: a resumable upload on GCS
    source.write_bytes(payload)
    info = store.put("landing/book.bin", source)
    assert info.size == len(payload)
    assert store.read_bytes("landing/book.bin") == payload


# -- bus -----------------------------------------------------------------------------------------
def test_bus_publish_delivers_data_and_attributes(backend, settings, tmp_path, unique_name):
    from retail_pipeline.adapters import open_bus

    if backend == "embedded":
        from retail_pipeline.adapters.local_bus import SpoolBus

        bus = SpoolBus(tmp_path / "bus", unique_name)
        subscription = bus.subscribe("transform")

        def received() -> list:
            return [(m.message_id, m.data, m.attributes) for m in subscription.pull()]
    else:
        from retail_pipeline.adapters.google_clients import subscriber_client

        bus = open_bus(settings.with_changes(bus=f"pubsub://retail-local/{unique_name}"))
        bus.provision()
        subscriber = subscriber_client(settings)
        sub = subscriber.subscription_path("retail-local", unique_name + "-pull")
        subscriber.create_subscription(request={"name": sub, "topic": bus.topic})

        def received() -> list:
            got, deadline = [], time.monotonic() + 30
            while len(got) < 2 and time.monotonic() < deadline:
                response = subscriber.pull(request={"subscription": sub, "max_messages": 10}, timeout=10)
                got += [
                    (m.message.message_id, m.message.data, dict(m.message.attributes))
                    for m in response.received_messages
                ]
            return got

    assert bus.topic.endswith(f"/topics/{unique_name}")
    first = bus.publish(b'{"batch_id": "b1"}', {"batch_id": "b1", "rows": 12})
    second = bus.publish(b"{}", {"batch_id": "b2"})
    assert first != second
    messages = sorted(received())
    assert sorted(m[0] for m in messages) == sorted([first, second])
    by_id = {m[0]: m for m in messages}
    assert by_id[first][1] == b'{"batch_id": "b1"}'
    assert by_id[first][2] == {"batch_id": "b1", "rows": "12"}  # attributes travel as strings
    assert by_id[second][2] == {"batch_id": "b2"}


# -- warehouse -----------------------------------------------------------------------------------
def make_warehouse(backend: str, tmp_path: Path, name: str, lake, settings):
    from retail_pipeline.adapters import open_warehouse

    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}" if backend == "embedded" else f"bigquery://retail-local/{name}"
    warehouse = open_warehouse(
        settings.with_changes(warehouse=url), lake=lake, claims=lake if backend == "emulator" else None
    )
    warehouse.provision()
    return warehouse


def loads_of(warehouse) -> dict:
    """{batch_id: {kind: {objects, rows}}} from the warehouse's batch records (manifests not counted)."""
    out: dict = {}
    for record in warehouse.batch_records():
        for (kind, _partition), rows in record.loaded.items():
            entry = out.setdefault(record.batch_id, {}).setdefault(kind, {"objects": 0, "rows": 0})
            entry["objects"] += 1
            entry["rows"] += rows
    return out


def ingest_into(store, workbook: Path, generation: int):
    from retail_pipeline.config import Limits
    from retail_pipeline.ingest import ingest_object

    return ingest_object(workbook, "book.xlsx", "gs://landing/book.xlsx", generation, store, Limits())


def request_for(store, name: str, tmp_path: Path, warehouse) -> LoadRequest:
    from retail_pipeline.stages import lake_object_kind

    return LoadRequest.for_object(lake_object_kind(name), store.stat(name), store.uri(name))


def test_warehouse_loads_once_and_newer_generation_supersedes(backend, settings, tmp_path, unique_name, small_workbook):
    store = make_store(backend, tmp_path, f"{unique_name}-lake", settings)
    warehouse = make_warehouse(backend, tmp_path, unique_name, store, settings)
    old = ingest_into(store, small_workbook, 100)
    months = sorted(p["partition"] for p in old.partitions)[:2]
    names = [f"manifests/{old.batch_id}.json"] + [f"sales/month={m}/{old.batch_id}.parquet" for m in months]
    expected_rows = {
        m: pq.read_metadata(store.download(f"sales/month={m}/{old.batch_id}.parquet", tmp_path / "check")).num_rows
        for m in months
    }
    results = [warehouse.load_object(request_for(store, n, tmp_path, warehouse)) for n in names]
    assert [r.status for r in results] == ["loaded"] * 3
    assert [r.rows for r in results[1:]] == [expected_rows[m] for m in months]
    again = warehouse.load_object(request_for(store, names[1], tmp_path, warehouse))
    assert (again.status, again.rows) == ("already_loaded", expected_rows[months[0]])

    progress = warehouse.batch_progress(old.batch_id)
    assert progress.manifest_loaded and progress.state == "ingested" and not progress.superseded
    assert progress.loaded == {("sales", m): expected_rows[m] for m in months}
    assert len(progress.expected) == len(old.partitions) > 2 and not progress.complete
    loads = loads_of(warehouse)[old.batch_id]
    assert loads["sales"] == {"objects": 2, "rows": sum(expected_rows.values())}

    # the same landing object, a newer generation: its loads replace the older batch's rows
    new = ingest_into(store, small_workbook, 200)
    fresh = warehouse.load_object(
        request_for(store, f"sales/month={months[1]}/{new.batch_id}.parquet", tmp_path, warehouse)
    )
    assert fresh.status == "loaded"
    late = warehouse.load_object(
        request_for(store, f"sales/month={months[0]}/{old.batch_id}.parquet", tmp_path, warehouse)
    )
    assert late.status == "superseded"
    loads = loads_of(warehouse)
    assert loads[new.batch_id] == {"sales": {"objects": 1, "rows": expected_rows[months[1]]}}
    # the older batch's rows are gone; the ledger keeps the record that it was superseded
    record = {r.batch_id: r for r in warehouse.batch_records()}[old.batch_id]
    assert record.manifest_state is None and record.source_generation == 100 < record.newest_generation == 200
    assert not warehouse.batch_progress(old.batch_id).complete  # its rows and ledger are gone


def test_warehouse_transform_claim_has_one_winner(backend, settings, tmp_path, unique_name):
    store = make_store(backend, tmp_path, f"{unique_name}-lake", settings)
    warehouse = make_warehouse(backend, tmp_path, unique_name, store, settings)
    wins: list[bool] = []

    def claim() -> None:
        # a loser answers False, or raises a transient error the platform retries (DuckDB's
        # concurrent-transaction primary-key conflict); either way it did not win
        try:
            wins.append(warehouse.claim_transform("batch1", "initial"))
        except Exception as exc:
            wins.append(False)
            errors.append(exc)

    errors: list[Exception] = []

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(wins) == [False, False, False, True]
    assert all("duplicate key" in str(e).lower() for e in errors), errors
    assert warehouse.claim_transform("batch1", "initial") is False
    assert warehouse.claim_transform("batch1", "replay-1") is True  # another key is another claim
    warehouse.release_transform("batch1", "replay-1")
    assert warehouse.claim_transform("batch1", "replay-1") is True  # released: the retry takes it
    warehouse.finish_transform("batch1", "initial", TransformResult("success", 7, 0, 5, 1.5))
    runs = {r["claim_key"]: r for r in warehouse.runs()}
    assert set(runs) == {"initial", "replay-1"}
    assert (runs["initial"]["state"], runs["initial"]["tests_passed"], runs["initial"]["models_built"]) == (
        "success",
        7,
        5,
    )
    assert runs["replay-1"]["state"] == "running"
    assert warehouse.figures().fact_rows == 0  # no dbt run has built the fact
    assert [b.batch_id for b in warehouse.claimable_batches()] == []  # batch1 has no manifest: never claimable


def test_bigquery_raw_table_is_partitioned_and_clustered(emulator_env, home, tmp_path, unique_name):
    from retail_pipeline.config import Settings
    from retail_pipeline.schema import TABLES

    settings = Settings.from_env(home)
    warehouse = make_warehouse(
        "emulator", tmp_path, unique_name, make_store("emulator", tmp_path, unique_name + "-l", settings), settings
    )
    table = warehouse.client.get_table(f"retail-local.{unique_name}_raw.sales_lines")
    assert (table.time_partitioning.type_, table.time_partitioning.field) == ("DAY", "invoice_date")
    assert [f.name for f in table.schema] == [c.name for c in TABLES["sales_lines"]]
    assert table.schema[[f.name for f in table.schema].index("unit_price")].field_type in ("NUMERIC", "BIGNUMERIC")


def test_folder_bucket_keeps_its_records_inside_its_own_folder(tmp_path):
    from retail_pipeline.adapters.local_store import META_DIR, FolderStore

    store = FolderStore(tmp_path / "lake")
    store.put("sales/a.parquet", b"x", metadata={"rows": "1"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lake"]  # nothing beside the folder the user named
    assert (tmp_path / "lake" / META_DIR).is_dir()
    assert [o.name for o in store.list()] == ["sales/a.parquet"]  # the records are not objects
    assert store.stat("sales/a.parquet").metadata == {"rows": "1"}
    with pytest.raises(ValueError, match="reserved"):
        store.put(f"{META_DIR}/x", b"y")


def test_folder_bucket_applies_generation_preconditions_once(tmp_path):
    from retail_pipeline.adapters.local_store import FolderStore
    from retail_pipeline.ports import PreconditionFailed

    store = FolderStore(tmp_path / "lake")
    wins, losses = [], []

    def create(i: int) -> None:
        try:
            store.put("_claims/b1/initial", f"{i}".encode(), if_generation_match=0)
            wins.append(i)
        except PreconditionFailed:
            losses.append(i)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(wins) == 1 and len(losses) == 5
    assert store.read_bytes("_claims/b1/initial") == f"{wins[0]}".encode()  # the winner's write, nobody else's
    current = store.stat("_claims/b1/initial").generation
    with pytest.raises(PreconditionFailed):
        store.put("_claims/b1/initial", b"z", if_generation_match=current + 1)
    assert store.put("_claims/b1/initial", b"z", if_generation_match=current).generation > current
