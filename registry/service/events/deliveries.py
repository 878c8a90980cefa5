"""Delivery bookkeeping: claim due deliveries, record each attempt, retry with backoff, dead letters,
redeliver, history.

A claim is one transaction: the due rows are locked (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so
deliverers in several processes take disjoint rows; SQLite serialises writers and runs one deliverer),
their attempt counter goes up, `claimed_by` names the deliverer, and `next_attempt_at` moves past a
lease longer than any attempt can last. The attempt's result is recorded only by the claimant of that
same attempt number; if a deliverer dies mid-attempt, the lease runs out and the next claim retries it
with the same event id. So every event is delivered at least once and no attempt runs twice at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, delete, exists, func, select
from sqlalchemy.orm import Session, noload

from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.errors import Conflict, NotFound
from registry.service.access.policy import maintained
from registry.service.catalog import audit
from registry.service.context import Registry
from registry.service.events import outbox
from registry.service.events.audience import refusal
from registry.service.events.webhooks import managed_webhook, signing_secrets, visible_webhook
from registry.webhooks.views import AttemptView, DeliveryView

MAX_ERROR = 2000
MAX_RESPONSE_TEXT = 1024


@dataclass(frozen=True)
class Claim:
    """One attempt a deliverer now owns."""

    delivery_id: int
    attempt: int
    event_id: str
    event_type: str
    body: str
    webhook_id: str
    url: str
    secrets: tuple[str, ...]


@dataclass(frozen=True)
class Result:
    """What one attempt got: a status code, or an error before any answer."""

    status_code: int | None
    latency_ms: float
    error: str | None = None
    response: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300


def lease_seconds(reg: Registry) -> float:
    """Longer than any attempt (bounded by the timeout) plus recording it."""
    return 2 * reg.settings.webhook_timeout_seconds + 5


def backoff_seconds(reg: Registry, attempts: int) -> float:
    """After the n-th failed attempt: base * 2^(n-1), capped, times a jitter of 1-2 (5-10 s first)."""
    s = reg.settings
    return min(s.webhook_backoff_max_seconds, s.webhook_backoff_seconds * 2 ** max(0, attempts - 1)) * (
        1 + random.random()
    )


def retry_window(reg: Registry) -> timedelta:
    return timedelta(hours=reg.settings.webhook_retry_hours)


def claim(reg: Registry, *, limit: int, worker: str, now: datetime | None = None) -> list[Claim]:
    """Take up to `limit` due deliveries of active webhooks for this deliverer."""
    now = now or m.utcnow()
    d = m.WebhookDelivery
    with transaction(reg.sessions) as session:
        # One round trip: the due rows (locked; rows other deliverers hold are skipped) with their event
        # and webhook. Only the deliveries are locked (OF), never the shared event or webhook rows.
        found = session.execute(
            select(d, m.WebhookEvent, m.Webhook)
            .join(m.WebhookEvent, m.WebhookEvent.id == d.event_id)
            .join(m.Webhook, m.Webhook.id == d.webhook_id)
            .where(d.status == "pending", d.next_attempt_at <= now, m.Webhook.active.is_(True))
            .order_by(d.next_attempt_at, d.id)
            .limit(limit)
            .options(noload(d.event))
            .with_for_update(of=d, skip_locked=True)
        ).all()
        claims = []
        for row, event, hook in found:
            refused = refusal(session, hook, event.namespace)
            if refused is not None:
                _finish(row, "dead", now, error=refused)
                continue
            row.attempts += 1
            row.claimed_by = worker
            row.next_attempt_at = now + timedelta(seconds=lease_seconds(reg))
            claims.append(
                Claim(
                    delivery_id=row.id,
                    attempt=row.attempts,
                    event_id=row.event_id,
                    event_type=event.type,
                    body=event.body,
                    webhook_id=hook.id,
                    url=hook.url,
                    secrets=signing_secrets(hook),
                )
            )
        return claims


def _finish(row: m.WebhookDelivery, status: str, now: datetime, *, error: str | None = None) -> None:
    row.status = status
    row.claimed_by = None
    row.next_attempt_at = now
    if status == "delivered":
        row.delivered_at = now
    if error is not None:
        row.last_error = error[:MAX_ERROR]


def record(
    reg: Registry, results: list[tuple[Claim, Result]], *, worker: str, now: datetime | None = None
) -> list[str]:
    """Record attempts' results in one transaction; per attempt: `delivered`, `retrying` (due again
    after the backoff), `dead` (the retry window is over), or `stale` (its claim was lost meanwhile, by
    a lease that ran out: nothing recorded)."""
    now = now or m.utcnow()
    d = m.WebhookDelivery
    with transaction(reg.sessions) as session:
        ids = sorted({claim.delivery_id for claim, _ in results})  # one lock order for every recorder
        rows = {
            row.id: row
            for row in session.scalars(
                select(d).where(d.id.in_(ids)).order_by(d.id).options(noload(d.event)).with_for_update()
            )
        }
        return [_record_one(session, reg, rows.get(c.delivery_id), c, r, worker, now) for c, r in results]


def _record_one(
    session: Session,
    reg: Registry,
    row: m.WebhookDelivery | None,
    claim: Claim,
    result: Result,
    worker: str,
    now: datetime,
) -> str:
    if row is None or row.status != "pending" or row.attempts != claim.attempt or row.claimed_by != worker:
        return "stale"
    error = result.error[:MAX_ERROR] if result.error else None
    if error is None and not result.ok:
        error = f"HTTP {result.status_code}"
    session.add(
        m.WebhookAttempt(
            delivery_id=row.id,
            attempt=claim.attempt,
            at=now,
            status_code=result.status_code,
            latency_ms=round(result.latency_ms, 2),
            error=error,
            response=result.response[:MAX_RESPONSE_TEXT] if result.response else None,
            worker=worker,
        )
    )
    row.last_status_code = result.status_code
    row.last_latency_ms = round(result.latency_ms, 2)
    row.last_error = error
    if result.ok:
        _finish(row, "delivered", now)
        return "delivered"
    retry_at = now + timedelta(seconds=backoff_seconds(reg, row.attempts))
    if retry_at > row.retry_from + retry_window(reg):
        _finish(row, "dead", now)
        return "dead"
    row.claimed_by = None
    row.next_attempt_at = retry_at
    return "retrying"


def redeliver(reg: Registry, webhook_id: str, event_id: str) -> DeliveryView:
    """Deliver an event to a webhook again, with the same webhook-id and body, from now on (a fresh
    retry window). Refused while an attempt of it is in flight."""
    now = m.utcnow()
    with transaction(reg.sessions) as session:
        hook = managed_webhook(session, reg.acting, webhook_id, action="webhook_redeliver")
        row = session.scalar(
            select(m.WebhookDelivery)
            .where(m.WebhookDelivery.webhook_id == webhook_id, m.WebhookDelivery.event_id == event_id)
            .with_for_update()
        )
        if row is None:
            raise NotFound(f"webhook {webhook_id!r:.60} has no delivery of event {event_id!r:.60}")
        if row.status == "pending" and row.claimed_by is not None and row.next_attempt_at > now:
            raise Conflict(f"event {event_id}: an attempt is being made now; look at its result first")
        row.status = "pending"
        row.claimed_by = None
        row.next_attempt_at = now
        row.retry_from = now
        row.delivered_at = None
        audit.record(
            session,
            reg.principal,
            "webhook_redeliver",
            f"webhook:{webhook_id}",
            namespace=hook.namespace,
            event_id=event_id,
        )
        outbox.on_commit(session, outbox.queued.set)
        session.flush()
        return _views(session, reg, [row], history=True)[0]


def _views(
    session: Session, reg: Registry, rows: list[m.WebhookDelivery], *, history: bool
) -> list[DeliveryView]:
    attempts: dict[int, list[AttemptView]] = {}
    if history and rows:
        query = (
            select(m.WebhookAttempt)
            .where(m.WebhookAttempt.delivery_id.in_([r.id for r in rows]))
            .order_by(m.WebhookAttempt.delivery_id, m.WebhookAttempt.attempt, m.WebhookAttempt.id)
        )
        for a in session.scalars(query):
            attempts.setdefault(a.delivery_id, []).append(
                AttemptView(
                    attempt=a.attempt,
                    at=a.at,
                    status_code=a.status_code,
                    latency_ms=a.latency_ms,
                    error=a.error,
                    response=a.response,
                    worker=a.worker,
                )
            )
    window = retry_window(reg)
    return [
        DeliveryView(
            event_id=r.event_id,
            event_type=r.event.type,
            webhook_id=r.webhook_id,
            status=r.status,
            attempts=r.attempts,
            created_at=r.created_at,
            next_attempt_at=r.next_attempt_at if r.status == "pending" else None,
            retry_until=r.retry_from + window,
            delivered_at=r.delivered_at,
            last_status_code=r.last_status_code,
            last_latency_ms=r.last_latency_ms,
            last_error=r.last_error,
            history=attempts.get(r.id, []),
        )
        for r in rows
    ]


def list_deliveries(
    reg: Registry,
    webhook_id: str | None,
    *,
    status: str | None = None,
    limit: int = 50,
    history: bool = True,
) -> list[DeliveryView]:
    """Newest first: one webhook's deliveries (or those of every webhook the caller sees, for the web
    page; decided in the query)."""
    if status is not None and status not in m.DELIVERY_STATUSES:
        from registry.errors import InvalidInput

        raise InvalidInput(f"status: must be one of {', '.join(m.DELIVERY_STATUSES)}", field="status")
    d = m.WebhookDelivery
    query = select(d).order_by(d.created_at.desc(), d.id.desc()).limit(limit)
    with reg.sessions() as session:
        if webhook_id is not None:
            visible_webhook(session, reg.acting, webhook_id)
            query = query.where(d.webhook_id == webhook_id)
        else:
            query = query.where(d.webhook_id.in_(_visible_ids(reg)))
        if status is not None:
            query = query.where(d.status == status)
        return _views(session, reg, list(session.scalars(query)), history=history)


def get_delivery(reg: Registry, webhook_id: str, event_id: str) -> DeliveryView:
    with reg.sessions() as session:
        visible_webhook(session, reg.acting, webhook_id)
        row = session.scalar(
            select(m.WebhookDelivery).where(
                m.WebhookDelivery.webhook_id == webhook_id, m.WebhookDelivery.event_id == event_id
            )
        )
        if row is None:
            raise NotFound(f"webhook {webhook_id!r:.60} has no delivery of event {event_id!r:.60}")
        return _views(session, reg, [row], history=True)[0]


def _visible_ids(reg: Registry) -> Select[tuple[str]]:
    """Ids of the webhooks the caller sees (the policy's, inside the query)."""
    return select(m.Webhook.id).where(maintained(reg.acting, m.Webhook.namespace))


def counts_by_webhook(reg: Registry) -> dict[tuple[str, str], int]:
    """(webhook id, status) -> number of deliveries (the web page's columns), of the webhooks the caller
    sees."""
    d = m.WebhookDelivery
    with reg.sessions() as session:
        rows = session.execute(
            select(d.webhook_id, d.status, func.count())
            .where(d.webhook_id.in_(_visible_ids(reg)))
            .group_by(d.webhook_id, d.status)
        )
        return {(hook, status): int(n) for hook, status, n in rows}


def pending_count(reg: Registry) -> int:
    with reg.sessions() as session:
        d = m.WebhookDelivery
        return int(session.scalar(select(func.count()).select_from(d).where(d.status == "pending")) or 0)


def prune(reg: Registry, *, now: datetime | None = None, batch: int = 1000) -> int:
    """Forget events older than PEMREG_WEBHOOK_HISTORY_DAYS that nothing still has to deliver (their
    deliveries and attempts go with them). Returns how many events went."""
    cutoff = (now or m.utcnow()) - timedelta(days=reg.settings.webhook_history_days)
    e, d = m.WebhookEvent, m.WebhookDelivery
    still_due = exists().where(d.event_id == e.id, d.status == "pending")
    with transaction(reg.sessions) as session:
        ids = session.scalars(select(e.id).where(e.created_at < cutoff, ~still_due).limit(batch)).all()
        if ids:
            session.execute(delete(e).where(e.id.in_(ids)))
        return len(ids)
