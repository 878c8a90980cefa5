"""Webhooks: create, list, edit, delete, rotate the secret, ping. Every change is audited.

Admin-only for now (the REST routes and the local CLI); the owner recorded here is whose read rights
decide which private-namespace events the webhook receives (registry.service.events.audience).
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.errors import Conflict, InvalidInput, NotFound
from registry.service.catalog import audit
from registry.service.context import Registry
from registry.service.events import outbox
from registry.service.events.hosts import AllowedHosts, check_url
from registry.webhooks.signing import new_secret
from registry.webhooks.types import SUBSCRIBABLE, EventData, EventType
from registry.webhooks.views import PingSent, WebhookCreated, WebhookView

NAMESPACE_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
# An alias glob: alias characters plus fnmatch's `*`, `?` and `[...]` classes.
ALIAS_GLOB_RE = re.compile(r"[a-z0-9._*?\[\]!-]{1,64}")
MAX_DESCRIPTION = 4096
UNSET: Any = object()


def allowed_hosts(reg: Registry) -> AllowedHosts:
    try:
        return AllowedHosts.parse(reg.settings.webhook_allowed_hosts)
    except ValueError as exc:  # the operator's setting, named as such
        raise InvalidInput(str(exc), field="url") from None


def check_events(events: list[str] | None) -> list[str]:
    """Known event types, each once, in the order given; empty = every type."""
    known = {t.value for t in SUBSCRIBABLE}
    out: list[str] = []
    for item in events or []:
        if item not in known:
            raise InvalidInput(
                f"events: {item!r:.60} is not an event type ({', '.join(sorted(known))})", field="events"
            )
        if item not in out:
            out.append(item)
    return out


def check_namespace(namespace: str | None) -> str | None:
    if namespace is None or namespace == "":
        return None
    if not NAMESPACE_RE.fullmatch(namespace):
        raise InvalidInput(f"namespace: {namespace!r:.80} is not a namespace", field="namespace")
    return namespace


def check_alias_pattern(pattern: str | None) -> str | None:
    if pattern is None or pattern == "":
        return None
    if not ALIAS_GLOB_RE.fullmatch(pattern):
        raise InvalidInput(
            f"alias_pattern: {pattern!r:.80} is not an alias glob (alias characters, * ? [...])",
            field="alias_pattern",
        )
    return pattern


def check_description(description: str | None) -> str | None:
    if description is None:
        return None
    if len(description) > MAX_DESCRIPTION:
        raise InvalidInput(f"description: at most {MAX_DESCRIPTION} characters", field="description")
    if any(ord(c) < 0x20 and c not in "\n\t" for c in description):
        raise InvalidInput("description: control characters are not allowed", field="description")
    return description or None


def view_of(row: m.Webhook) -> WebhookView:
    grace = row.previous_secret_until if row.previous_secret and row.previous_secret_until else None
    return WebhookView(
        id=row.id,
        url=row.url,
        events=list(row.events or []),
        namespace=row.namespace,
        alias_pattern=row.alias_pattern,
        description=row.description,
        active=row.active,
        owner=row.owner,
        created_at=row.created_at,
        updated_at=row.updated_at,
        previous_secret_until=grace if grace is not None and grace > m.utcnow() else None,
    )


def _row(session: Session, webhook_id: str, lock: bool = False) -> m.Webhook:
    row = session.get(m.Webhook, webhook_id, with_for_update=lock) if len(webhook_id) <= 36 else None
    if row is None:
        raise NotFound(f"webhook {webhook_id!r:.60} not found")
    return row


def create_webhook(
    reg: Registry,
    *,
    url: str,
    events: list[str] | None = None,
    namespace: str | None = None,
    alias_pattern: str | None = None,
    description: str | None = None,
) -> WebhookCreated:
    """A new webhook; its secret is returned here only."""
    target = check_url(url, allowed_hosts(reg))
    fields = {
        "url": target.url,
        "events": check_events(events),
        "namespace": check_namespace(namespace),
        "alias_pattern": check_alias_pattern(alias_pattern),
        "description": check_description(description),
    }
    secret = new_secret()
    now = m.utcnow()
    with transaction(reg.sessions) as session:
        row = m.Webhook(
            id=str(uuid.uuid4()),
            secret=secret,
            active=True,
            owner=reg.principal,
            created_at=now,
            updated_at=now,
            **fields,
        )
        session.add(row)
        audit.record(session, reg.principal, "webhook_create", f"webhook:{row.id}", **fields)
        session.flush()
        return WebhookCreated(**view_of(row).model_dump(), secret=secret)


def list_webhooks(reg: Registry) -> list[WebhookView]:
    with reg.sessions() as session:
        rows = session.scalars(select(m.Webhook).order_by(m.Webhook.created_at, m.Webhook.id))
        return [view_of(row) for row in rows]


def get_webhook(reg: Registry, webhook_id: str) -> WebhookView:
    with reg.sessions() as session:
        return view_of(_row(session, webhook_id))


def update_webhook(
    reg: Registry,
    webhook_id: str,
    *,
    url: str | None = None,
    events: list[str] | None = None,
    namespace: str | None = UNSET,
    alias_pattern: str | None = UNSET,
    description: str | None = None,
    active: bool | None = None,
) -> WebhookView:
    """Merge-patch: fields given are replaced (namespace / alias_pattern given as None or "" clear them)."""
    changes: dict[str, Any] = {}
    if url is not None:
        changes["url"] = check_url(url, allowed_hosts(reg)).url
    if events is not None:
        changes["events"] = check_events(events)
    if namespace is not UNSET:
        changes["namespace"] = check_namespace(namespace)
    if alias_pattern is not UNSET:
        changes["alias_pattern"] = check_alias_pattern(alias_pattern)
    if description is not None:
        changes["description"] = check_description(description)
    if active is not None:
        changes["active"] = bool(active)
    with transaction(reg.sessions) as session:
        row = _row(session, webhook_id, lock=True)
        changed = {k: v for k, v in changes.items() if getattr(row, k) != v}
        if changed:
            for key, value in changed.items():
                setattr(row, key, value)
            row.updated_at = m.utcnow()
            audit.record(session, reg.principal, "webhook_update", f"webhook:{row.id}", **changed)
        session.flush()
        return view_of(row)


def delete_webhook(reg: Registry, webhook_id: str) -> None:
    """The webhook and its delivery history (pending deliveries are dropped)."""
    with transaction(reg.sessions) as session:
        row = _row(session, webhook_id, lock=True)
        session.delete(row)
        audit.record(session, reg.principal, "webhook_delete", f"webhook:{webhook_id}", url=row.url)


def rotate_secret(reg: Registry, webhook_id: str) -> WebhookCreated:
    """A new secret, returned once; the previous one keeps signing beside it for
    PEMREG_WEBHOOK_SECRET_GRACE_HOURS, so receivers can switch without missing a delivery."""
    secret = new_secret()
    grace = timedelta(hours=reg.settings.webhook_secret_grace_hours)
    with transaction(reg.sessions) as session:
        row = _row(session, webhook_id, lock=True)
        now = m.utcnow()
        row.previous_secret, row.previous_secret_until = row.secret, now + grace
        row.secret = secret
        row.updated_at = now
        audit.record(
            session,
            reg.principal,
            "webhook_rotate_secret",
            f"webhook:{row.id}",
            previous_until=str(now + grace),
        )
        session.flush()
        return WebhookCreated(**view_of(row).model_dump(), secret=secret)


def signing_secrets(row: m.Webhook) -> tuple[str, ...]:
    """Current first; the previous one while its grace period lasts."""
    if row.previous_secret and row.previous_secret_until and row.previous_secret_until > m.utcnow():
        return (row.secret, row.previous_secret)
    return (row.secret,)


def ping(reg: Registry, webhook_id: str) -> PingSent:
    """Queue a `webhook.ping` event for this webhook alone (whatever its filters say)."""
    with transaction(reg.sessions) as session:
        row = _row(session, webhook_id)
        data = EventData(webhook_id=row.id, actor=reg.principal)
        event_id = outbox.emit(session, EventType.WEBHOOK_PING, data, only=row)
        if event_id is None:
            raise Conflict(f"webhook {row.id}: its owner {row.owner!r} may no longer receive events")
        return PingSent(webhook_id=row.id, event_id=event_id)
