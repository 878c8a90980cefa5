"""Webhooks: create, list, edit, delete, rotate the secret, ping. Every change is audited.

Who manages which (the product contract, section 6b; decided by the one policy):
- a webhook of namespace X (its `namespace` filter) is seen and managed by X's maintainers and admins:
  listings filter inside their query (`policy.maintained`), one webhook's changes lock X's row as every
  namespace write does (`policy.standing(lock=True)`), so a revoked maintainer grant holds from the next
  statement;
- a registry-wide webhook (no namespace) by admins only;
- anyone else gets 404 for a webhook, exactly as for one that does not exist (a refused change is still
  audited, in the webhook's namespace).
The owner recorded here (its creator: `key:<name>`, `user:<sub>`, or the operator's name) is whose read
rights decide which events it receives (registry.service.events.audience).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.errors import Conflict, InvalidInput, NotFound
from registry.refs import ALIAS_GLOB_RE, validate_namespace
from registry.service.access.identity import Access
from registry.service.access.policy import (
    RANK,
    Refusal,
    RefusedUnseen,
    maintained,
    maintains_somewhere,
    require,
    require_global,
    standing,
)
from registry.service.catalog import audit
from registry.service.context import Registry
from registry.service.events import outbox
from registry.service.events.audience import refusal
from registry.service.events.hosts import AllowedHosts, check_url
from registry.webhooks.signing import new_secret
from registry.webhooks.types import SUBSCRIBABLE, EventData, EventType
from registry.webhooks.views import PingSent, WebhookCreated, WebhookView

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
    return validate_namespace(namespace)


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


def _missing(webhook_id: str) -> str:
    return f"webhook {webhook_id!r:.60} not found"


def visible_webhook(session: Session, access: Access, webhook_id: str) -> m.Webhook:
    """A webhook `access` may see (it maintains its namespace, or is an admin); NotFound otherwise."""
    row = None
    if len(webhook_id) <= 36:
        row = session.scalar(
            select(m.Webhook).where(m.Webhook.id == webhook_id, maintained(access, m.Webhook.namespace))
        )
    if row is None:
        raise NotFound(_missing(webhook_id))
    return row


def managed_webhook(session: Session, access: Access, webhook_id: str, *, action: str) -> m.Webhook:
    """A webhook `access` may change, locked with its namespace's row (FOR SHARE, as every namespace
    write) until the caller's transaction ends. One it may not see answers as a missing one (404), and
    the refusal is audited in the webhook's namespace."""
    row = session.get(m.Webhook, webhook_id, with_for_update=True) if len(webhook_id) <= 36 else None
    if row is None:
        raise NotFound(_missing(webhook_id))
    if row.namespace is None:
        if access.is_admin:
            return row
        has: str | None = access.role
        why = f"{access.principal} is {access.role}; {action} of a registry-wide webhook needs admin"
    else:
        st = standing(session, access, row.namespace, lock=True)
        if st.rank >= RANK["maintainer"]:
            return row
        has = st.role
        role = st.role or "nothing"
        why = f"{access.principal} is {role} in namespace {row.namespace}; {action} needs maintainer"
    subject = f"webhook:{row.id}"
    raise RefusedUnseen(
        _missing(webhook_id),
        Refusal(access.principal, action, subject, row.namespace, "maintainer", has, why),
    )


def _may_target(
    session: Session, access: Access, namespace: str | None, *, action: str, subject: str
) -> None:
    """Creating a webhook of `namespace`, or moving one there: maintainer of it (404 when unseen, 403
    when the role falls short); a registry-wide one (None): admin."""
    if namespace is None:
        require_global(access, "admin", action=f"{action} (registry-wide)", subject=subject)
    else:
        require(
            session,
            access,
            namespace,
            "maintainer",
            action=action,
            subject=subject,
            missing=f"namespace {namespace} not found",
        )


def _origin(url: str) -> str:
    """What the audit log records of a receiver's URL: its origin. Its path or query may be its
    credential (chat webhooks), and the audit log is read by every reader of the namespace."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def create_webhook(
    reg: Registry,
    *,
    url: str,
    events: list[str] | None = None,
    namespace: str | None = None,
    alias_pattern: str | None = None,
    description: str | None = None,
) -> WebhookCreated:
    """A new webhook owned by the caller (a maintainer of `namespace`, or an admin, who may also create
    registry-wide ones); its secret is returned here only."""
    access = reg.acting
    ns = check_namespace(namespace)
    secret = new_secret()
    now = m.utcnow()
    with transaction(reg.sessions) as session:
        # Who may first: a principal that may not create one learns nothing of the allowed hosts.
        _may_target(
            session, access, ns, action="webhook_create", subject=f"webhooks of {ns or 'the registry'}"
        )
        target = check_url(url, allowed_hosts(reg)).url
        fields = {
            "url": target,
            "events": check_events(events),
            "namespace": ns,
            "alias_pattern": check_alias_pattern(alias_pattern),
            "description": check_description(description),
        }
        row = m.Webhook(
            id=str(uuid.uuid4()),
            secret=secret,
            active=True,
            owner=access.principal,
            created_at=now,
            updated_at=now,
            **fields,
        )
        session.add(row)
        audited = {k: v for k, v in fields.items() if k != "namespace"} | {"url": _origin(target)}
        audit.record(
            session, access.principal, "webhook_create", f"webhook:{row.id}", namespace=ns, **audited
        )
        session.flush()
        return WebhookCreated(**view_of(row).model_dump(), secret=secret)


def list_webhooks(reg: Registry) -> list[WebhookView]:
    """The webhooks of the namespaces the caller maintains (every one for an admin)."""
    with reg.sessions() as session:
        rows = session.scalars(
            select(m.Webhook)
            .where(maintained(reg.acting, m.Webhook.namespace))
            .order_by(m.Webhook.created_at, m.Webhook.id)
        )
        return [view_of(row) for row in rows]


def manages_any(reg: Registry) -> bool:
    """Whether the caller may manage webhooks at all: an admin, or a maintainer of some namespace."""
    with reg.sessions() as session:
        return maintains_somewhere(session, reg.acting)


def get_webhook(reg: Registry, webhook_id: str) -> WebhookView:
    with reg.sessions() as session:
        return view_of(visible_webhook(session, reg.acting, webhook_id))


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
    """Merge-patch: fields given are replaced (namespace / alias_pattern given as None or "" clear them).
    Moving a webhook to another namespace needs maintainer there too (clearing it: admin)."""
    access = reg.acting
    with transaction(reg.sessions) as session:
        row = managed_webhook(session, access, webhook_id, action="webhook_update")
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
        changed = {k: v for k, v in changes.items() if getattr(row, k) != v}
        if "namespace" in changed:
            _may_target(
                session, access, changed["namespace"], action="webhook_update", subject=f"webhook:{row.id}"
            )
        if changed:
            previous_namespace = row.namespace
            for key, value in changed.items():
                setattr(row, key, value)
            row.updated_at = m.utcnow()
            audited = {k: v for k, v in changed.items() if k != "namespace"}
            if "url" in changed:
                audited["url"] = _origin(changed["url"])
            if "namespace" in changed:
                audited |= {"from_namespace": previous_namespace, "to_namespace": row.namespace}
            # Recorded where its maintainers read it: the namespace it had (and the one it moved to).
            for ns in dict.fromkeys((previous_namespace, row.namespace)):
                audit.record(
                    session, access.principal, "webhook_update", f"webhook:{row.id}", namespace=ns, **audited
                )
        session.flush()
        return view_of(row)


def delete_webhook(reg: Registry, webhook_id: str) -> None:
    """The webhook and its delivery history (pending deliveries are dropped)."""
    access = reg.acting
    with transaction(reg.sessions) as session:
        row = managed_webhook(session, access, webhook_id, action="webhook_delete")
        session.delete(row)
        audit.record(
            session,
            access.principal,
            "webhook_delete",
            f"webhook:{webhook_id}",
            namespace=row.namespace,
            url=_origin(row.url),
        )


def rotate_secret(reg: Registry, webhook_id: str) -> WebhookCreated:
    """A new secret, returned once; the previous one keeps signing beside it for
    PEMREG_WEBHOOK_SECRET_GRACE_HOURS, so receivers can switch without missing a delivery."""
    access = reg.acting
    secret = new_secret()
    grace = timedelta(hours=reg.settings.webhook_secret_grace_hours)
    with transaction(reg.sessions) as session:
        row = managed_webhook(session, access, webhook_id, action="webhook_rotate_secret")
        now = m.utcnow()
        row.previous_secret, row.previous_secret_until = row.secret, now + grace
        row.secret = secret
        row.updated_at = now
        audit.record(
            session,
            access.principal,
            "webhook_rotate_secret",
            f"webhook:{row.id}",
            namespace=row.namespace,
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
    """Queue a `webhook.ping` event for this webhook alone (whatever its filters say); 409 when its
    owner may no longer receive events (revoked), saying why."""
    access = reg.acting
    with transaction(reg.sessions) as session:
        row = managed_webhook(session, access, webhook_id, action="webhook_ping")
        data = EventData(webhook_id=row.id, actor=access.principal)
        event_id = outbox.emit(session, EventType.WEBHOOK_PING, data, only=row)
        if event_id is None:  # its owner may not receive events (a revoked key, SSO turned off)
            raise Conflict(f"webhook {row.id}: {refusal(session, row, None)}")
        return PingSent(webhook_id=row.id, event_id=event_id)
