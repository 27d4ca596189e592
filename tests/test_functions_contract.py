"""The three entry points through functions-framework's real HTTP path (binary and structured events)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cloudevents.http import CloudEvent
from functions_framework import create_app

from retail_pipeline import events
from retail_pipeline.ports import Message

FUNCTIONS = Path(__file__).resolve().parents[1] / "functions"


def client(target: str):
    return create_app(target, str(FUNCTIONS / target / "main.py"), "cloudevent").test_client()


def finalize_event(ctx, store, name: str) -> CloudEvent:
    return events.storage_finalized(store.stat(name))


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_ingest_accepts_an_eventarc_event_and_writes_the_lake(ctx, small_workbook, mode):
    ctx.landing.put("book.xlsx", small_workbook)
    headers, body = getattr(events, mode)(finalize_event(ctx, ctx.landing, "book.xlsx"))
    response = client("ingest").post("/", headers=headers, data=body)
    assert response.status_code == 200
    names = [i.name for i in ctx.lake.list()]
    assert any(n.startswith("manifests/") for n in names)
    assert sum(n.startswith("sales/month=") for n in names) >= 12


def test_binary_event_carries_eventarc_attributes(ctx, small_workbook):
    info = ctx.landing.put("book.xlsx", small_workbook)
    headers, body = events.binary(events.storage_finalized(info))
    assert headers["ce-type"] == "google.cloud.storage.object.v1.finalized"
    assert headers["ce-source"] == f"//storage.googleapis.com/projects/_/buckets/{info.bucket}"
    assert headers["ce-subject"] == "objects/book.xlsx"
    data = json.loads(body)
    assert data["bucket"] == info.bucket and data["name"] == "book.xlsx"
    assert data["generation"] == str(info.generation) and data["size"] == str(info.size)


@pytest.mark.parametrize("missing", ["ce-specversion", "ce-type", "ce-source", "ce-id"])
def test_missing_required_header_is_a_400(ctx, small_workbook, missing):
    info = ctx.landing.put("book.xlsx", small_workbook)
    headers, body = events.binary(events.storage_finalized(info))
    del headers[missing]
    response = client("ingest").post("/", headers=headers, data=body)
    assert response.status_code == 400
    assert list(ctx.lake.list()) == []


def test_wrong_event_type_is_acknowledged_not_retried(ctx, small_workbook, caplog):
    info = ctx.landing.put("book.xlsx", small_workbook)
    event = events.storage_finalized(info)
    event["type"] = "google.cloud.storage.object.v1.archived"
    headers, body = events.binary(event)
    response = client("ingest").post("/", headers=headers, data=body)
    assert response.status_code == 200  # permanent: a retry could never succeed, so the platform must not retry
    assert list(ctx.lake.list()) == []
    logged = [r for r in caplog.records if getattr(r, "event_id", None) == event["id"]]
    assert [r.levelname for r in logged] == ["ERROR"]
    assert f"expected {events.STORAGE_FINALIZED}, got {event['type']}" in logged[0].getMessage()


def ignored_reasons(caplog, event) -> list[str]:
    return [r.getMessage() for r in caplog.records if getattr(r, "event_id", None) == event["id"]]


def test_event_for_another_bucket_is_acknowledged_not_retried(ctx, small_workbook, caplog):
    info = ctx.landing.put("book.xlsx", small_workbook)
    event = events.storage_finalized(info)
    event.data = {**event.data, "bucket": "someone-elses-bucket"}
    headers, body = events.binary(event)
    for target in ("ingest", "load"):
        caplog.clear()
        response = client(target).post("/", headers=headers, data=body)
        assert response.status_code == 200
        reasons = ignored_reasons(caplog, event)
        assert len(reasons) == 1 and "someone-elses-bucket" in reasons[0]
    assert list(ctx.lake.list()) == []


def test_storage_event_without_generation_is_acknowledged(ctx, caplog):
    info = ctx.landing.put("book.xlsx", b"x")
    event = events.storage_finalized(info)
    event.data = {k: v for k, v in event.data.items() if k != "generation"}
    headers, body = events.binary(event)
    response = client("ingest").post("/", headers=headers, data=body)
    assert response.status_code == 200
    assert ["generation" in r for r in ignored_reasons(caplog, event)] == [True]


def test_transient_failure_still_raises_for_a_retry(ctx, small_workbook, monkeypatch):
    info = ctx.landing.put("book.xlsx", small_workbook)
    headers, body = events.binary(events.storage_finalized(info))

    def unavailable(*_a, **_k):
        raise ConnectionError("the lake is unreachable")

    monkeypatch.setattr(type(ctx.lake), "put", unavailable)
    response = client("ingest").post("/", headers=headers, data=body)
    assert response.status_code == 500  # transient: the platform retries the event


def test_ingest_ignores_its_own_rejection_reports(ctx):
    info = ctx.landing.put("rejected/x.xlsx.1.error.json", b"{}")
    headers, body = events.binary(events.storage_finalized(info))
    assert client("ingest").post("/", headers=headers, data=body).status_code == 200
    assert list(ctx.lake.list()) == []


def test_rejected_file_returns_200_and_writes_a_report(ctx, tmp_path):
    info = ctx.landing.put("notes.xlsx", b"this is not a workbook")
    headers, body = events.binary(events.storage_finalized(info))
    response = client("ingest").post("/", headers=headers, data=body)
    assert response.status_code == 200  # permanent error: recorded, not retried
    report_name = f"rejected/notes.xlsx.{info.generation}.error.json"
    report = json.loads(ctx.landing.read_bytes(report_name))
    assert report["reason"] == "not_a_workbook" and "not one" in report["error"]
    manifests = [i.name for i in ctx.lake.list("manifests/")]
    assert len(manifests) == 1
    assert json.loads(ctx.lake.read_bytes(manifests[0]))["state"] == "rejected"


def test_load_ignores_objects_that_are_not_partitions(ctx):
    info = ctx.lake.put("notes/readme.txt", b"hello")
    headers, body = events.binary(events.storage_finalized(info))
    assert client("load").post("/", headers=headers, data=body).status_code == 200
    assert ctx.bus.subscribe("transform").pull() == []


def test_load_then_transform_over_http(ctx, small_workbook):
    from retail_pipeline.stages import ingest_landing_object

    info = ctx.landing.put("book.xlsx", small_workbook)
    result = ingest_landing_object(info.bucket, "book.xlsx", info.generation)
    load = client("load")
    for obj in ctx.lake.list():
        headers, body = events.binary(events.storage_finalized(obj))
        assert load.post("/", headers=headers, data=body).status_code == 200
    messages = ctx.bus.subscribe("transform").pull()
    assert len(messages) == result["partitions"] + 1  # every partition and the manifest
    attributes = messages[0].attributes
    assert attributes["batch_id"] == result["batch_id"] and attributes["source"].endswith("book.xlsx")
    assert {"partition", "rows", "kind"} <= set(attributes)
    transform = client("transform")
    for _i, message in enumerate(messages[:2]):
        event = events.pubsub_published(message, ctx.bus.topic, "projects/local/subscriptions/transform")
        headers, body = events.binary(event)
        assert transform.post("/", headers=headers, data=body).status_code == 200
    runs = ctx.warehouse.runs()
    assert len(runs) == 1 and runs[0]["state"] == "success"
    assert ctx.warehouse.figures().fact_rows == result["rows"]["loaded"]


def test_transform_acknowledges_a_message_without_batch(ctx, caplog):
    message = Message("m1", b"{}", {}, events.datetime.now(events.UTC))
    event = events.pubsub_published(message, ctx.bus.topic, "projects/p/subscriptions/s")
    headers, body = events.binary(event)
    response = client("transform").post("/", headers=headers, data=body)
    assert response.status_code == 200  # permanent: acknowledged, so Pub/Sub does not redeliver it for days
    assert ["batch_id" in r for r in ignored_reasons(caplog, event)] == [True]
    assert ctx.warehouse.runs() == []
