"""Audit log: every mutation writes one event inside the same transaction as the change."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.catalog import models as m
from registry.service.context import Registry
from registry.views import AuditEventView


def record(session: Session, actor: str, action: str, subject: str, **details: Any) -> None:
    session.add(m.AuditEvent(actor=actor, action=action, subject=subject, details=details))


def list_events(
    reg: Registry, *, subject: str | None = None, actor: str | None = None, limit: int = 100
) -> list[AuditEventView]:
    query = select(m.AuditEvent).order_by(m.AuditEvent.id.desc()).limit(limit)
    if subject:
        # A subject names an object; "acme/x" also matches its versions "acme/x@3".
        query = query.where(
            (m.AuditEvent.subject == subject) | m.AuditEvent.subject.startswith(f"{subject}@")
        )
    if actor:
        query = query.where(m.AuditEvent.actor == actor)
    with reg.sessions() as session:
        return [AuditEventView.of(row) for row in session.scalars(query)]
