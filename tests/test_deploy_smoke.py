"""scripts/smoke_test.py against the GCS and BigQuery emulators: it uploads with the storage
client, waits for its rows in the fact table, and fails on timeout, rejection or a wrong count."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import smoke_test  # noqa: E402

emulators = pytest.importorskip("retail_pipeline.emulators")


@pytest.fixture(scope="module")
def clients(tmp_path_factory):
    absent = [m for m in emulators.missing() if "Pub/Sub" not in m and "java" not in m]
    if absent:
        pytest.skip("missing local stand-ins: " + "; ".join(absent))
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery, storage

    emu = emulators.Emulators(tmp_path_factory.mktemp("emu"), with_pubsub=False).start(timeout=90)
    try:
        mp = pytest.MonkeyPatch()
        mp.setenv("STORAGE_EMULATOR_HOST", emu.gcs_url)
        gcs = storage.Client(project=emu.project, credentials=AnonymousCredentials())
        gcs.create_bucket("smoke-landing")
        bq = bigquery.Client(
            project=emu.project, credentials=AnonymousCredentials(), client_options={"api_endpoint": emu.bq_url}
        )
        for dataset in ("shop_raw", "shop_analytics"):
            bq.create_dataset(dataset)
        bq.create_table(
            bigquery.Table(
                f"{emu.project}.shop_raw.batches",
                schema=[
                    bigquery.SchemaField("source_uri", "STRING"),
                    bigquery.SchemaField("state", "STRING"),
                    bigquery.SchemaField("error", "STRING"),
                ],
            )
        )
        yield emu, gcs, bq
    finally:
        mp.undo()
        emu.stop()


def _tables(emu):
    return f"{emu.project}.shop_analytics.fct_sales_lines", f"{emu.project}.shop_raw.batches"


def _insert(bq, table: str, rows: list[dict]) -> None:
    columns = ", ".join(rows[0])
    values = ", ".join("(" + ", ".join(f"'{v}'" for v in row.values()) + ")" for row in rows)
    bq.query(f"INSERT INTO `{table}` ({columns}) VALUES {values}").result(timeout=30)


def test_times_out_when_no_rows_arrive(clients):
    emu, _, bq = clients
    fact, batches = _tables(emu)
    started = time.monotonic()
    result = smoke_test.wait_for_rows(
        bq, fact, batches, "gs://smoke-landing/never.xlsx", 5, timeout=1.5, poll_seconds=0.5, say=lambda _: None
    )
    assert not result.ok
    assert "timed out after 2 s" in result.message or "timed out after 1 s" in result.message
    assert 1.5 <= time.monotonic() - started < 15


def test_uploads_then_waits_for_exactly_its_rows(clients):
    """A stand-in for the deployed chain writes the rows a few seconds after the upload."""
    from google.cloud import bigquery

    emu, gcs, bq = clients
    fact, _ = _tables(emu)
    bq.create_table(bigquery.Table(fact, schema=[bigquery.SchemaField("source_uri", "STRING")]), exists_ok=True)
    _insert(bq, fact, [{"source_uri": "gs://smoke-landing/older.xlsx"}] * 3)
    seen: dict = {}

    def pipeline_stand_in():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            blobs = list(gcs.list_blobs("smoke-landing", prefix="smoke/"))
            if blobs:
                blob = blobs[0]
                seen["uri"] = f"gs://smoke-landing/{blob.name}"
                seen["bytes"] = blob.download_as_bytes()
                time.sleep(1.0)  # the rows show up later than the object
                import tempfile

                import pyarrow.parquet as pq

                from retail_pipeline.adapters.local_store import FolderStore
                from retail_pipeline.config import Limits
                from retail_pipeline.ingest import ingest_object

                with tempfile.TemporaryDirectory() as tmp:
                    local = Path(tmp) / "book.xlsx"
                    local.write_bytes(seen["bytes"])
                    ingest_object(local, "book.xlsx", seen["uri"], 1, FolderStore(Path(tmp) / "lake"), Limits())
                    seen["rows"] = sum(
                        pq.read_metadata(p).num_rows for p in (Path(tmp) / "lake" / "sales").rglob("*.parquet")
                    )
                _insert(bq, fact, [{"source_uri": seen["uri"]}] * seen["rows"])
                return
            time.sleep(0.2)

    worker = threading.Thread(target=pipeline_stand_in, daemon=True)
    worker.start()
    result = smoke_test.run_smoke(
        gcs,
        bq,
        project=emu.project,
        landing_bucket="smoke-landing",
        analytics_dataset="shop_analytics",
        raw_dataset="shop_raw",
        rows=150,
        seed=11,
        object_prefix="smoke/",
        timeout=60,
        poll_seconds=0.5,
        say=lambda _: None,
    )
    worker.join(timeout=30)
    assert result.ok, result.message
    assert result.source_uri == seen["uri"] and seen["uri"].startswith("gs://smoke-landing/smoke/")
    assert seen["bytes"][:2] == b"PK"  # an xlsx (zip) arrived in the bucket
    assert result.found_rows == result.expected_rows == seen["rows"]
    assert 0 < seen["rows"] <= 150
    assert result.seconds >= 0.5  # it had to wait for the stand-in


def test_fails_fast_on_a_rejected_file(clients):
    emu, _, bq = clients
    fact, batches = _tables(emu)
    _insert(
        bq, batches, [{"source_uri": "gs://smoke-landing/bad.xlsx", "state": "rejected", "error": "not a workbook"}]
    )
    result = smoke_test.wait_for_rows(
        bq, fact, batches, "gs://smoke-landing/bad.xlsx", 5, timeout=30, poll_seconds=0.5, say=lambda _: None
    )
    assert not result.ok
    assert "rejected the file: not a workbook" in result.message
    assert result.seconds < 10


def test_fails_on_more_rows_than_expected(clients):
    from google.cloud import bigquery

    emu, _, bq = clients
    fact, batches = _tables(emu)
    bq.create_table(bigquery.Table(fact, schema=[bigquery.SchemaField("source_uri", "STRING")]), exists_ok=True)
    _insert(bq, fact, [{"source_uri": "gs://smoke-landing/twice.xlsx"}] * 4)
    result = smoke_test.wait_for_rows(
        bq, fact, batches, "gs://smoke-landing/twice.xlsx", 2, timeout=30, poll_seconds=0.5, say=lambda _: None
    )
    assert not result.ok and result.found_rows == 4
    assert "more than the 2 expected" in result.message
