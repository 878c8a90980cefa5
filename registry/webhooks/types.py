"""Event types and the JSON body every delivery sends: `{"type", "timestamp", "data"}`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel


class EventType(StrEnum):
    VERSION_CREATED = "version.created"
    VERSION_STATUS_CHANGED = "version.status_changed"
    VERSION_DELETED = "version.deleted"
    ALIAS_MOVED = "alias.moved"
    ALIAS_DELETED = "alias.deleted"
    COMPOSITION_SUCCEEDED = "composition.succeeded"
    COMPOSITION_FAILED = "composition.failed"
    COMPOSITION_REJECTED = "composition.rejected"
    WEBHOOK_PING = "webhook.ping"


ALIAS_EVENTS = frozenset({EventType.ALIAS_MOVED, EventType.ALIAS_DELETED})
# A webhook subscribes to these; a ping goes to the one webhook pinged, whatever it subscribed to.
SUBSCRIBABLE = tuple(t for t in EventType if t is not EventType.WEBHOOK_PING)


class EventData(BaseModel):
    """What an event names, as it applies (absent fields are left out of the body)."""

    name: str | None = None  # ns/name of the adapter (a composition's output name)
    namespace: str | None = None
    version: int | None = None
    sha256: str | None = None
    alias: str | None = None
    previous_version: int | None = None  # alias.moved: where the alias pointed before (None: new)
    status: str | None = None  # the version's status, or the composition's
    previous_status: str | None = None
    composition_id: str | None = None
    cache_hit: bool | None = None
    trigger: str | None = None
    error: str | None = None
    actor: str | None = None  # the principal that made the change
    webhook_id: str | None = None  # webhook.ping: the webhook pinged


class Event(BaseModel):
    type: EventType
    timestamp: datetime
    data: EventData

    def body(self) -> str:
        """The exact text a delivery sends and signs (compact JSON, UTC timestamp with `Z`)."""
        stamp = self.timestamp.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        doc = {"type": self.type.value, "timestamp": stamp, "data": self.data.model_dump(exclude_none=True)}
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def parse(cls, body: bytes | str) -> Event:
        return cls.model_validate_json(body)


def now() -> datetime:
    return datetime.now(UTC)
