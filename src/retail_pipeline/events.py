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
from datetime import datetime, timezone

from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent

from .ports import Message, ObjectInfo

STORAGE_FINALIZED = "google.cloud.storage.object.v1.finalized"
PUBSUB_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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


def storage_finalized(info: ObjectInfo) -> CloudEvent:
    event_id = hashlib.sha1(f"{info.bucket}/{info.name}#{info.generation}".encode()).hexdigest()[:16]
    return CloudEvent(
        {
            "type": STORAGE_FINALIZED,
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


def pubsub_payload(cloud_event) -> tuple[dict, dict[str, str]]:
    """(decoded JSON data, attributes) of a messagePublished event."""
    message = cloud_event.data["message"]
    data = json.loads(base64.b64decode(message.get("data") or b"e30=")) if message.get("data") else {}
    return data, dict(message.get("attributes") or {})
