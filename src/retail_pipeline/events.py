"""CloudEvents as Google's platform builds them, so local delivery is byte-for-byte the same shape.

- Cloud Storage via Eventarc: type ``google.cloud.storage.object.v1.finalized``, source
  ``//storage.googleapis.com/projects/_/buckets/BUCKET``, subject ``objects/NAME``, data = the
  object resource (generation and size as strings, as the JSON API gives them).
- Pub/Sub via Eventarc: type ``google.cloud.pubsub.topic.v1.messagePublished``, source
  ``//pubsub.googleapis.com/projects/P/topics/T``, data = {message: {data (base64), attributes,
  messageId, publishTime}, subscription}.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from datetime import UTC, datetime
from typing import Any

from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent

from .ports import Message, ObjectInfo

log = logging.getLogger(__name__)

STORAGE_FINALIZED = "google.cloud.storage.object.v1.finalized"
STORAGE_ARCHIVED = (
    "google.cloud.storage.object.v1.archived"  #: a live generation became noncurrent (deleted or replaced)
)
PUBSUB_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def storage_object_data(info: ObjectInfo) -> dict:
    return {
        "kind": "storage#object",
        "id": f"{info.bucket}/{info.name}/{info.generation}",
        "name": info.name,
        "bucket": info.bucket,
        "generation": str(info.generation),
        "metageneration": "1",
        "contentType": info.content_type,
        "timeCreated": _rfc3339(info.updated),
        "updated": _rfc3339(info.updated),
        "storageClass": "STANDARD",
        "size": str(info.size),
        "md5Hash": info.md5_hash,
        "metadata": dict(info.metadata),
    }


def storage_finalized(info: ObjectInfo, event_type: str = STORAGE_FINALIZED) -> CloudEvent:
    key = f"{info.bucket}/{info.name}#{info.generation}" + ("" if event_type == STORAGE_FINALIZED else f"#{event_type}")
    event_id = hashlib.sha1(key.encode()).hexdigest()[:16]
    return CloudEvent(
        {
            "type": event_type,
            "source": f"//storage.googleapis.com/projects/_/buckets/{info.bucket}",
            "subject": f"objects/{info.name}",
            "id": event_id,
            "time": _rfc3339(info.updated),
            "specversion": "1.0",
            "datacontenttype": "application/json",
        },
        storage_object_data(info),
    )


def pubsub_published(message: Message, topic: str, subscription: str) -> CloudEvent:
    return CloudEvent(
        {
            "type": PUBSUB_PUBLISHED,
            "source": f"//pubsub.googleapis.com/{topic}",
            "id": message.message_id,
            "time": _rfc3339(message.publish_time),
            "specversion": "1.0",
            "datacontenttype": "application/json",
        },
        {
            "message": {
                "data": base64.b64encode(message.data).decode(),
                "attributes": message.attributes,
                "messageId": message.message_id,
                "publishTime": _rfc3339(message.publish_time),
            },
            "subscription": subscription,
        },
    )


def binary(event: CloudEvent) -> tuple[dict[str, str], bytes]:
    """Headers and body of a binary-mode HTTP CloudEvent (what Eventarc sends)."""
    headers, body = to_binary(event, data_marshaller=lambda d: json.dumps(d).encode())
    return dict(headers), body


def structured(event: CloudEvent) -> tuple[dict[str, str], bytes]:
    headers, body = to_structured(event)
    return dict(headers), body


class PermanentEventError(ValueError):
    """An event that no retry can make succeed: not for this function, or missing what it needs."""


def storage_object(cloud_event: Any, accept: tuple[str, ...] = (STORAGE_FINALIZED,)) -> tuple[str, str, int]:
    """(bucket, name, generation) of a storage event of an ``accept``ed type (default: finalize);
    PermanentEventError for anything else."""
    if cloud_event["type"] not in accept:
        raise PermanentEventError(f"expected {' or '.join(accept)}, got {cloud_event['type']}")
    data = cloud_event.data if isinstance(cloud_event.data, dict) else {}
    missing = [k for k in ("bucket", "name", "generation") if not data.get(k)]
    if missing:
        raise PermanentEventError(f"storage event data lacks {', '.join(missing)}")
    try:
        return str(data["bucket"]), str(data["name"]), int(data["generation"])
    except ValueError as exc:
        raise PermanentEventError(f"storage event generation {data['generation']!r} is not a number") from exc


def pubsub_payload(cloud_event: Any) -> tuple[dict, dict[str, str]]:
    """(decoded JSON data, attributes) of a messagePublished event; PermanentEventError for anything else."""
    if cloud_event["type"] != PUBSUB_PUBLISHED:
        raise PermanentEventError(f"expected {PUBSUB_PUBLISHED}, got {cloud_event['type']}")
    message = (cloud_event.data or {}).get("message") if isinstance(cloud_event.data, dict) else None
    if not isinstance(message, dict):
        raise PermanentEventError("the event carries no Pub/Sub message")
    try:
        data = json.loads(base64.b64decode(message["data"])) if message.get("data") else {}
    except (ValueError, TypeError) as exc:
        raise PermanentEventError(f"the message data is not base64 JSON: {exc}") from exc
    return (data if isinstance(data, dict) else {}), dict(message.get("attributes") or {})


def acknowledge(cloud_event: Any, error: PermanentEventError) -> dict:
    """Log a permanent event error with the event id and answer 2xx, so the platform does not retry."""
    event_id = cloud_event["id"]
    log.error(
        "event %s (%s) not processed, and not retried: %s",
        event_id,
        cloud_event["type"],
        error,
        extra={"event_id": event_id, "status": "ignored"},
    )
    return {"status": "ignored", "reason": str(error), "event_id": event_id}
