"""The official Google clients, made from :class:`~retail_pipeline.config.Settings` alone.

Against Google Cloud (no endpoint set) every client uses Application Default Credentials. Against
an emulator, or the strict gateway in front of one, a client acts as ``settings.identity`` (a
service account named by its token, see :mod:`retail_pipeline.identity`), or anonymously when the
settings name none.
"""

from __future__ import annotations

from typing import Any

from ..config import Settings
from ..identity import credentials_for


def storage_client(settings: Settings) -> Any:
    from google.cloud import storage

    endpoint = settings.endpoints.storage
    if endpoint is None:
        return storage.Client(project=settings.endpoints.project)
    return storage.Client(
        project=settings.endpoints.project or "local",
        credentials=credentials_for(settings),
        client_options={"api_endpoint": endpoint},
    )


def bigquery_client(settings: Settings, project: str) -> Any:
    from google.cloud import bigquery

    endpoint = settings.endpoints.bigquery
    if endpoint is None:
        return bigquery.Client(project=project, location=settings.bigquery_location)
    return bigquery.Client(
        project=project,
        location=settings.bigquery_location,
        credentials=credentials_for(settings),
        client_options={"api_endpoint": endpoint},
    )


def publisher_client(settings: Settings) -> Any:
    from google.cloud import pubsub_v1

    if settings.endpoints.pubsub is None:
        return pubsub_v1.PublisherClient()
    import grpc
    from google.pubsub_v1.services.publisher.transports.grpc import PublisherGrpcTransport

    # the emulator speaks plaintext gRPC and checks no identity (see docs/architecture.md)
    return pubsub_v1.PublisherClient(
        transport=PublisherGrpcTransport(channel=grpc.insecure_channel(settings.endpoints.pubsub))
    )


def subscriber_client(settings: Settings) -> Any:
    from google.cloud import pubsub_v1

    if settings.endpoints.pubsub is None:
        return pubsub_v1.SubscriberClient()
    import grpc
    from google.pubsub_v1.services.subscriber.transports.grpc import SubscriberGrpcTransport

    return pubsub_v1.SubscriberClient(
        transport=SubscriberGrpcTransport(channel=grpc.insecure_channel(settings.endpoints.pubsub))
    )


def _run_admin_client(settings: Settings, client_class: Any) -> Any:
    """A Cloud Run Admin API client (``JobsClient``, ``ExecutionsClient``): ADC in GCP, REST to the
    stand-in with this process's identity on the emulator chain."""
    if settings.endpoints.run_admin is None:
        return client_class()
    return client_class(
        transport="rest",
        credentials=credentials_for(settings),
        client_options={"api_endpoint": settings.endpoints.run_admin},
    )


def jobs_client(settings: Settings) -> Any:
    from google.cloud import run_v2

    return _run_admin_client(settings, run_v2.JobsClient)


def executions_client(settings: Settings) -> Any:
    from google.cloud import run_v2

    return _run_admin_client(settings, run_v2.ExecutionsClient)
