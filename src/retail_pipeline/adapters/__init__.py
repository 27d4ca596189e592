"""The adapter factory: the only place that turns settings into adapters (see docs/architecture.md)."""

from __future__ import annotations

from ..config import Settings
from ..ports import MessageBus, ObjectStore, Transformer, Warehouse
from ..urls import parse_bucket


def open_store(url: str, settings: Settings) -> ObjectStore:
    """``gs://bucket`` → Cloud Storage; anything else is a local folder."""
    bucket = parse_bucket(url)
    if bucket.kind == "gcs":
        from .gcs import GcsStore
        from .google_clients import storage_client

        return GcsStore(
            bucket.bucket, client_factory=lambda: storage_client(settings), location=settings.bigquery_location
        )
    from .local_store import FolderStore

    assert bucket.path is not None
    return FolderStore(bucket.path)


def open_warehouse(
    settings: Settings, *, lake: ObjectStore | None = None, claims: ObjectStore | None = None
) -> Warehouse:
    """``duckdb:///path`` → DuckDB file; ``bigquery://project/prefix`` → BigQuery. The warehouse reads
    lake objects through ``lake`` and makes transform claims through ``claims`` (ports it is given)."""
    target = settings.warehouse_url
    lake = lake if lake is not None else open_store(settings.lake, settings)
    if target.kind == "duckdb":
        from .duckdb_warehouse import DuckDBWarehouse

        assert target.path is not None
        return DuckDBWarehouse(target.path, lake=lake, faults=settings.faults)
    from .bigquery_warehouse import BigQueryWarehouse
    from .google_clients import bigquery_client

    if claims is None and settings.claims_store_url:
        claims = open_store(settings.claims_store_url, settings)
    return BigQueryWarehouse(
        target.project,
        target.prefix,
        client_factory=lambda: bigquery_client(settings, target.project),
        lake=lake,
        claims=claims,
        location=settings.bigquery_location,
        faults=settings.faults,
        storage_read_api=settings.endpoints.bigquery is None,
    )


def open_bus(settings: Settings) -> MessageBus:
    """``local`` → spool folder under the home; ``pubsub://project/topic`` → Pub/Sub."""
    target = settings.bus_url
    if target.kind == "local":
        from ..config import DEFAULT_TOPIC
        from .local_bus import SpoolBus

        return SpoolBus(settings.home / "bus", DEFAULT_TOPIC)
    from .google_clients import publisher_client, subscriber_client
    from .pubsub_bus import PubSubBus

    return PubSubBus(
        target.project,
        target.topic,
        publisher=publisher_client(settings),
        subscriber_factory=lambda: subscriber_client(settings),
    )


def open_transformer(settings: Settings, *, warehouse: Warehouse | None = None) -> Transformer:
    """``dbt`` → dbt in this process; ``cloudrun://project/region/job`` → one Cloud Run job execution per run.
    ``warehouse``: the one this process uses; in-process dbt has it let go of its session first."""
    target = settings.transform_url
    if target.kind == "dbt":
        from ..transform import DbtTransformer

        transformer = DbtTransformer(settings, before_run=warehouse.release if warehouse is not None else None)
        transformer.warm_up()  # dbt imports and parses in its worker while ingest and load run
        return transformer
    from ..cloudrun import CloudRunJobTransformer, running_execution
    from .google_clients import executions_client, jobs_client

    job_name = f"projects/{target.project}/locations/{target.region}/jobs/{target.job}"
    return CloudRunJobTransformer(
        target.project,
        target.region,
        target.job,
        client_factory=lambda: jobs_client(settings),
        running_execution=lambda: running_execution(executions_client(settings), job_name),
        busy_wait_seconds=settings.transform_busy_wait_seconds,
    )


def import_client_libraries(settings: Settings) -> list[str]:
    """Import the Google client libraries the settings' adapters will use, making no client. A
    function imports them at start-up this way (Cloud Functions: during the cold start, not in the
    first request); a local function server that forks its instances afterwards imports them once,
    not once per instance. Returns the modules imported."""
    import importlib

    wanted = []
    if any(parse_bucket(url).kind == "gcs" for url in (settings.landing, settings.lake)):
        wanted.append("google.cloud.storage")
    if settings.warehouse_url.kind == "bigquery":
        wanted.append("google.cloud.bigquery")
    if settings.bus_url.kind == "pubsub":
        wanted.append("google.cloud.pubsub_v1")
    if settings.transform_url.kind == "cloudrun":
        wanted.append("google.cloud.run_v2")
    imported = []
    for name in wanted:
        try:
            importlib.import_module(name)
        except ImportError:  # not installed for this function (the sweep starts no job): its first use says so
            continue
        imported.append(name)
    return imported
