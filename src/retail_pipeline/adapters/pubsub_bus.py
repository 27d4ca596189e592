"""The bus on Pub/Sub (google-cloud-pubsub), or on Google's Pub/Sub emulator.

The client libraries honour ``PUBSUB_EMULATOR_HOST`` themselves (plaintext, no credentials).
Delivery to the transform function is the platform's job: an Eventarc trigger in GCP, a push
subscription on the emulator chain (see cli_serve.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone


class PubSubBus:
    """One topic behind the MessageBus port."""

    def __init__(self, project: str, topic: str, publisher=None, timeout: float = 60.0) -> None:
        self.project = project
        self.topic = f"projects/{project}/topics/{topic}"
        self.timeout = timeout
        self._publisher = publisher

    @property
    def publisher(self):
        if self._publisher is None:
            from google.cloud import pubsub_v1

            self._publisher = pubsub_v1.PublisherClient()
        return self._publisher

    def publish(self, data: bytes, attributes: dict[str, str]) -> str:
        """Publish once and wait for the server's message id (raises on failure: the caller retries)."""
        future = self.publisher.publish(self.topic, data, **{k: str(v) for k, v in attributes.items()})
        return future.result(timeout=self.timeout)

    def ensure_topic(self) -> None:
        """Create the topic if missing (emulator chain; Terraform creates it in GCP)."""
        from google.api_core.exceptions import AlreadyExists

        try:
            self.publisher.create_topic(request={"name": self.topic}, timeout=self.timeout)
        except AlreadyExists:
            pass

    def ensure_push_subscription(self, name: str, push_endpoint: str, *,
                                 ack_deadline_seconds: int = 600) -> str:
        """A push subscription with acked messages retained (so ``seek`` can replay them)."""
        from google.api_core.exceptions import AlreadyExists
        from google.cloud import pubsub_v1
        from google.protobuf import duration_pb2

        subscriber = pubsub_v1.SubscriberClient()
        path = subscriber.subscription_path(self.project, name)
        request = {
            "name": path, "topic": self.topic, "push_config": {"push_endpoint": push_endpoint},
            "ack_deadline_seconds": ack_deadline_seconds, "retain_acked_messages": True,
            "message_retention_duration": duration_pb2.Duration(seconds=7 * 24 * 3600),
            "retry_policy": {"minimum_backoff": duration_pb2.Duration(seconds=1),
                             "maximum_backoff": duration_pb2.Duration(seconds=10)},
        }
        try:
            subscriber.create_subscription(request=request, timeout=self.timeout)
        except AlreadyExists:
            subscriber.modify_push_config(request={"subscription": path, "push_config": {"push_endpoint": push_endpoint}},
                                          timeout=self.timeout)
        finally:
            subscriber.close()
        return path

    def seek(self, subscription: str, to: datetime | None = None, minutes_back: float = 60.0) -> None:
        """Replay: move ``subscription`` back to a time; retained messages after it are delivered again."""
        from google.cloud import pubsub_v1
        from google.protobuf import timestamp_pb2

        moment = to or datetime.now(timezone.utc) - timedelta(minutes=minutes_back)
        stamp = timestamp_pb2.Timestamp()
        stamp.FromDatetime(moment.astimezone(timezone.utc))
        subscriber = pubsub_v1.SubscriberClient()
        try:
            subscriber.seek(request={"subscription": subscription, "time": stamp}, timeout=self.timeout)
        finally:
            subscriber.close()
