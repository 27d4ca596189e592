"""The embedded bus: a spool folder with Pub/Sub's at-least-once contract.

``publish`` writes one JSON file per message. A subscriber (the local runtime's dispatcher)
``pull``s what is due, ``ack``s what its push endpoint accepted, and ``nack``s the rest, which
come back after a backoff; after ``max_attempts`` a message moves to ``dead-letter/``.
The spool survives restarts, and several processes can share it.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from ..ports import Message


class SpoolBus:
    """The topic and its one subscription in a spool folder (the subscriber is the local dispatcher)."""

    def __init__(self, root: Path, topic: str, *, max_attempts: int = 5, backoff_seconds: float = 0.2) -> None:
        self.root = Path(root) / topic
        self.topic = f"projects/local/topics/{topic}"
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.pending = self.root / "pending"
        self.dead = self.root / "dead-letter"

    def provision(self) -> None:
        self.pending.mkdir(parents=True, exist_ok=True)

    def subscribe(self, name: str, push_endpoint: str | None = None) -> SpoolSubscription:
        """The spool's subscription: the local dispatcher pulls it and pushes to the endpoint itself."""
        return SpoolSubscription(self, f"projects/local/subscriptions/{name}")

    def publish(self, data: bytes, attributes: dict[str, str]) -> str:
        self.pending.mkdir(parents=True, exist_ok=True)
        message_id = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        record = {
            "message_id": message_id,
            "data": data.decode("utf-8"),
            "attributes": {k: str(v) for k, v in attributes.items()},
            "publish_time": datetime.now(UTC).isoformat(),
            "delivery_attempt": 1,
            "not_before": 0.0,
        }
        tmp = self.pending / f".{message_id}.tmp"
        tmp.write_text(json.dumps(record))
        os.replace(tmp, self.pending / f"{message_id}.json")
        return message_id


class SpoolSubscription:
    """The spool's subscription: due messages, acks, nacks with backoff, then the dead-letter folder."""

    pushed_by_platform = False

    def __init__(self, bus: SpoolBus, name: str) -> None:
        self.bus = bus
        self.name = name

    def pull(self, max_messages: int = 100) -> list[Message]:
        if not self.bus.pending.is_dir():
            return []
        now = time.time()
        out = []
        for path in sorted(self.bus.pending.glob("*.json")):
            try:
                record = json.loads(path.read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                continue
            if record["not_before"] > now:
                continue
            out.append(_message(record))
            if len(out) >= max_messages:
                break
        return out

    def ack(self, message_id: str) -> None:
        (self.bus.pending / f"{message_id}.json").unlink(missing_ok=True)

    def nack(self, message_id: str) -> None:
        path = self.bus.pending / f"{message_id}.json"
        try:
            record = json.loads(path.read_text())
        except FileNotFoundError:
            return
        record["delivery_attempt"] += 1
        if record["delivery_attempt"] > self.bus.max_attempts:
            self.bus.dead.mkdir(parents=True, exist_ok=True)
            os.replace(path, self.bus.dead / path.name)
            return
        record["not_before"] = time.time() + self.bus.backoff_seconds * 2 ** (record["delivery_attempt"] - 2)
        tmp = path.with_name(f".{path.stem}.tmp")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, path)

    def backlog(self) -> int:
        return len(list(self.bus.pending.glob("*.json"))) if self.bus.pending.is_dir() else 0

    def is_dead_lettered(self, message_id: str) -> bool:
        return (self.bus.dead / f"{message_id}.json").exists()

    def dead_letters(self) -> list[Message]:
        return (
            [_message(json.loads(p.read_text())) for p in sorted(self.bus.dead.glob("*.json"))]
            if self.bus.dead.is_dir()
            else []
        )

    def next_due_in(self) -> float | None:
        """Seconds until the next pending message is due, or None when the spool is empty."""
        if not self.bus.pending.is_dir():
            return None
        due = []
        for path in self.bus.pending.glob("*.json"):
            try:
                due.append(json.loads(path.read_text())["not_before"])
            except (FileNotFoundError, json.JSONDecodeError):
                continue
        return max(0.0, min(due) - time.time()) if due else None


def _message(record: dict) -> Message:
    return Message(
        record["message_id"],
        record["data"].encode("utf-8"),
        record["attributes"],
        datetime.fromisoformat(record["publish_time"]),
        record["delivery_attempt"],
    )
