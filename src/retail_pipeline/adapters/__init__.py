"""Adapters behind the ports, chosen by URL-style settings (see :func:`open_store` and friends)."""

from __future__ import annotations

from ..config import Settings
from ..ports import MessageBus, ObjectStore, Warehouse

TOPIC = "partition-loaded"


def open_store(url: str) -> ObjectStore:
    """``gs://bucket`` → Cloud Storage; anything else is a local folder."""
    if url.startswith("gs://"):
        from .gcs import GcsStore

        return GcsStore(url[len("gs://") :].strip("/"))
    from .local_store import FolderStore

    return FolderStore(url[len("file://") :] if url.startswith("file://") else url)


def open_warehouse(url: str) -> Warehouse:
    """``duckdb:///path`` → DuckDB file; ``bigquery://project/prefix`` → BigQuery."""
    if url.startswith("duckdb://"):
        from .duckdb_warehouse import DuckDBWarehouse

        return DuckDBWarehouse(url[len("duckdb://") :])
    if url.startswith("bigquery://"):
        from .bigquery_warehouse import BigQueryWarehouse

        project, _, prefix = url[len("bigquery://") :].partition("/")
        return BigQueryWarehouse(project, prefix or "retail")
    raise ValueError(f"unknown warehouse URL {url!r}: use duckdb:///PATH or bigquery://PROJECT/DATASET_PREFIX")


def open_bus(settings: Settings) -> MessageBus:
    """``local`` → spool folder under the home; ``pubsub://project/topic`` → Pub/Sub."""
    if settings.bus == "local":
        from .local_bus import SpoolBus

        return SpoolBus(settings.home / "bus", TOPIC)
    if settings.bus.startswith("pubsub://"):
        from .pubsub_bus import PubSubBus

        project, _, topic = settings.bus[len("pubsub://") :].partition("/")
        return PubSubBus(project, topic or TOPIC)
    raise ValueError(f"unknown bus {settings.bus!r}: use 'local' or pubsub://PROJECT/TOPIC")
