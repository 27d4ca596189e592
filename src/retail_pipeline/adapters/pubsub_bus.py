"""The bus on Pub/Sub (google-cloud-pubsub), or on Google's Pub/Sub emulator.

Clients are made by :mod:`.google_clients` from the settings. Delivery to the transform function
is the platform's job: a push subscription (Terraform's in GCP, :meth:`PubSubBus.subscribe` on
the emulator chain), so the subscription hands a local dispatcher nothing to pull.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from ..ports import Message


class PushSubscription:
    """A push subscription: Pub/Sub delivers, redelivers and dead-letters by itself."""

    pushed_by_platform = True

    def __init__(self, name: str) -> None:
        self.name = name

    def pull(self, max_messages: int = 100) -> list[Message]:
        return []

    def ack(self, message_id: str) -> None:
        return None

    def nack(self, message_id: str) -> None:
        return None

    def is_dead_lettered(self, message_id: str) -> bool:
        return False

    def dead_letters(self) -> list[Message]:
        return []

    def next_due_in(self) -> float | None:
        return None


class PubSubBus:
    """One topic behind the MessageBus port."""

    def __init__(
        self, project: str, topic: str, *, publisher: Any, subscriber_factory: Callable[[], Any], timeout: float = 60.0
    ) -> None:
        self.project = project
        self.topic = f"projects/{project}/topics/{topic}"
        self.timeout = timeout
        self.publisher = publisher
        self.subscriber_factory = subscriber_factory

    def publish(self, data: bytes, attributes: dict[str, str]) -> str:
        """Publish once and wait for the server's message id (raises on failure: the caller retries)."""
        future = self.publisher.publish(self.topic, data, **{k: str(v) for k, v in attributes.items()})
        return future.result(timeout=self.timeout)

    def provision(self) -> None:
        """Create the topic if missing (emulator chain; Terraform creates it in GCP)."""
        from google.api_core.exceptions import AlreadyExists

        try:
            self.publisher.create_topic(request={"name": self.topic}, timeout=self.timeout)
        except AlreadyExists:
            pass

    def subscribe(
        self, name: str, push_endpoint: str | None = None, *, ack_deadline_seconds: int = 600
    ) -> PushSubscription:
        """A push subscription to ``push_endpoint`` with acked messages retained (so ``seek`` can replay them)."""
        from google.api_core.exceptions import AlreadyExists
        from google.protobuf import duration_pb2

        subscriber = self.subscriber_factory()
        if push_endpoint is None:
            return PushSubscription(subscriber.subscription_path(self.project, name))
        path = subscriber.subscription_path(self.project, name)
        request = {
            "name": path,
            "topic": self.topic,
            "push_config": {"push_endpoint": push_endpoint},
            "ack_deadline_seconds": ack_deadline_seconds,
            "retain_acked_messages": True,
            "message_retention_duration": duration_pb2.Duration(seconds=7 * 24 * 3600),
            "retry_policy": {
                "minimum_backoff": duration_pb2.Duration(seconds=1),
                "maximum_backoff": duration_pb2.Duration(seconds=10),
            },
        }
        try:
            subscriber.create_subscription(request=request, timeout=self.timeout)
        except AlreadyExists:
            subscriber.modify_push_config(
                request={"subscription": path, "push_config": {"push_endpoint": push_endpoint}}, timeout=self.timeout
            )
        finally:
            subscriber.close()
        return PushSubscription(path)

    def seek(self, subscription: str, to: datetime | None = None, minutes_back: float = 60.0) -> None:
        """Replay: move ``subscription`` back to a time; retained messages after it are delivered again."""
        from google.protobuf import timestamp_pb2

        moment = to or datetime.now(UTC) - timedelta(minutes=minutes_back)
        stamp = timestamp_pb2.Timestamp()
        stamp.FromDatetime(moment.astimezone(UTC))
        subscriber = self.subscriber_factory()
        try:
            subscriber.seek(request={"subscription": subscription, "time": stamp}, timeout=self.timeout)
        finally:
            subscriber.close()
