"""What the service returns about webhooks and their deliveries; the REST API serves these and
registry.client parses them (no SQLAlchemy at import)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel as Model
from pydantic import Field


class WebhookView(Model):
    id: str
    url: str
    events: list[str] = Field(description="event types delivered; empty = every type")
    namespace: str | None = Field(default=None, description="only events of this namespace")
    alias_pattern: str | None = Field(default=None, description="glob over the alias of alias events")
    description: str | None = None
    active: bool = True
    owner: str
    created_at: datetime
    updated_at: datetime
    previous_secret_until: datetime | None = Field(
        default=None, description="after a rotation: the previous secret also signs until then"
    )


class WebhookCreated(WebhookView):
    secret: str = Field(description="the signing secret (whsec_...), shown once")


class AttemptView(Model):
    attempt: int
    at: datetime
    status_code: int | None = Field(description="the receiver's HTTP status; None when none came")
    latency_ms: float
    error: str | None = None
    response: str | None = Field(default=None, description="the start of the receiver's answer")
    worker: str | None = Field(default=None, description="host:pid of the process that made the attempt")


class DeliveryView(Model):
    event_id: str = Field(description="= the webhook-id header of every attempt")
    event_type: str
    webhook_id: str
    status: str = Field(description="pending | delivered | dead")
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None = Field(description="pending: when the next attempt is due")
    retry_until: datetime
    delivered_at: datetime | None = None
    last_status_code: int | None = None
    last_latency_ms: float | None = None
    last_error: str | None = None
    history: list[AttemptView] = []


class PingSent(Model):
    webhook_id: str
    event_id: str
