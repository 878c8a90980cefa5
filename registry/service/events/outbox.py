"""The outbox: an event row, and one pending delivery per webhook that wants it, written inside the
transaction of the change that causes the event. A crash after the commit loses nothing (the rows are
there for the next deliverer); a rollback writes nothing (no event about a change that did not happen).

The service layer calls one function per kind of change, at the one place that change is made:
registration (`version_created`, from registration.register.commit_version), status changes and
deletes (`version_status_changed`, `version_deleted`, catalog.lifecycle), alias moves and deletes
(`alias_moved` from catalog.aliases.move_alias, `alias_deleted` from catalog.lifecycle), and the end of
a composition run (`composition_ended`, compositions.runs). A change that no webhook wants writes no row.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import datetime
from fnmatch import fnmatchcase

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from registry.catalog import models as m
from registry.service.admin import metrics
from registry.service.events.audience import webhook_may_receive
from registry.webhooks.types import ALIAS_EVENTS, Event, EventData, EventType

# Set after a commit that queued deliveries, so this process's deliverer starts at once instead of at
# its next poll (other processes' deliverers find the rows by polling).
queued = threading.Event()
_AFTER_COMMIT = "pemreg_after_commit"


def on_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run `callback` once the caller's transaction commits (never on rollback)."""
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    for callback in session.info.pop(_AFTER_COMMIT, []):
        callback()


@event.listens_for(Session, "after_rollback")
def _drop_after_commit(session: Session) -> None:
    session.info.pop(_AFTER_COMMIT, None)


def wants(hook: m.Webhook, kind: EventType, namespace: str | None, alias: str | None) -> bool:
    """The webhook's own filters: event types, namespace, and the alias glob (alias events only)."""
    if hook.events and kind.value not in hook.events:
        return False
    if hook.namespace is not None and hook.namespace != namespace:
        return False
    return not (
        hook.alias_pattern and kind in ALIAS_EVENTS and not fnmatchcase(alias or "", hook.alias_pattern)
    )


def new_event_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def emit(
    session: Session,
    kind: EventType,
    data: EventData,
    *,
    alias: str | None = None,
    only: m.Webhook | None = None,
    at: datetime | None = None,
) -> str | None:
    """Queue `kind` for every active webhook that wants it (or for `only`, whatever its filters: a
    ping). Returns the event id, or None when no webhook wants it (then nothing is written)."""
    namespace = data.namespace
    if only is not None:
        targets = [only]
    else:
        hooks = session.scalars(select(m.Webhook).where(m.Webhook.active.is_(True))).all()
        targets = [h for h in hooks if wants(h, kind, namespace, alias)]
    targets = [h for h in targets if webhook_may_receive(session, h, namespace)]
    if not targets:
        return None
    now = at or m.utcnow()
    event_id = new_event_id()
    body = Event(type=kind, timestamp=now, data=data).body()
    session.add(m.WebhookEvent(id=event_id, type=kind.value, namespace=namespace, body=body, created_at=now))
    session.flush()  # the event row first: deliveries reference it
    session.add_all(
        m.WebhookDelivery(
            webhook_id=h.id,
            event_id=event_id,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            retry_from=now,
            created_at=now,
        )
        for h in targets
    )
    on_commit(session, queued.set)
    return event_id


# ---- one function per kind of change --------------------------------------------------------------


def _version_data(row: m.AdapterVersion, actor: str, **fields: object) -> EventData:
    adapter = row.adapter
    return EventData(
        name=adapter.full_name,
        namespace=adapter.namespace,
        version=row.version,
        sha256=row.sha256,
        actor=actor,
        **fields,  # type: ignore[arg-type]
    )


def version_created(session: Session, row: m.AdapterVersion, actor: str) -> None:
    emit(session, EventType.VERSION_CREATED, _version_data(row, actor, status=row.status))


def version_status_changed(session: Session, row: m.AdapterVersion, previous: str, actor: str) -> None:
    data = _version_data(row, actor, status=row.status, previous_status=previous)
    emit(session, EventType.VERSION_STATUS_CHANGED, data)


def version_deleted(session: Session, row: m.AdapterVersion, previous: str, actor: str) -> None:
    data = _version_data(row, actor, status=row.status, previous_status=previous)
    emit(session, EventType.VERSION_DELETED, data)


def alias_moved(
    session: Session, row: m.AdapterVersion, alias: str, previous_version: int | None, actor: str
) -> None:
    data = _version_data(row, actor, alias=alias, previous_version=previous_version)
    emit(session, EventType.ALIAS_MOVED, data, alias=alias)


def alias_deleted(session: Session, adapter: m.Adapter, alias: str, version: int, actor: str) -> None:
    data = EventData(
        name=adapter.full_name,
        namespace=adapter.namespace,
        alias=alias,
        previous_version=version,
        actor=actor,
    )
    emit(session, EventType.ALIAS_DELETED, data, alias=alias)


COMPOSITION_EVENTS = {
    "succeeded": EventType.COMPOSITION_SUCCEEDED,
    "failed": EventType.COMPOSITION_FAILED,
    "rejected": EventType.COMPOSITION_REJECTED,
}


def composition_ended(row: m.Composition) -> None:
    """A run reached a final status, in the transaction that records it (the row must be in a session):
    the composition event, and the run's metrics once that transaction commits."""
    session = Session.object_session(row)
    assert session is not None, "composition_ended needs the run's row inside its transaction"
    output = session.get(m.AdapterVersion, row.output_version_id) if row.output_version_id else None
    namespace = row.output_name.split("/", 1)[0]
    data = EventData(
        name=row.output_name,
        namespace=namespace,
        version=output.version if output is not None else None,
        sha256=output.sha256 if output is not None else None,
        status=row.status,
        composition_id=row.id,
        cache_hit=row.cache_hit,
        trigger=row.trigger,
        error=row.error,
        actor=row.principal,
    )
    emit(session, COMPOSITION_EVENTS[row.status], data)
    began = row.started_at or row.created_at
    seconds = (row.finished_at - began).total_seconds() if row.finished_at and began else None
    status = row.status
    on_commit(session, lambda: metrics.composition_ended(status, seconds))
