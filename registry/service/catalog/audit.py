"""Audit log: every mutation writes one event inside the same transaction as the change; every refused
write is one event too (recorded by the shell that answered it, after its transaction rolled back).

Each event carries the namespace it is about (derived from `ns/name[@...]` subjects, or given), and a
reader sees only the events of namespaces it may read, decided inside the query
(registry.service.catalog.audit_reads).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.service.access.policy import Refusal
from registry.service.catalog.audit_reads import list_events as list_events  # its readers import it here
from registry.service.catalog.audit_reads import namespace_of
from registry.service.context import Registry

_DERIVE = object()


def record(
    session: Session, actor: str, action: str, subject: str, *, namespace: Any = _DERIVE, **details: Any
) -> None:
    ns = namespace_of(subject) if namespace is _DERIVE else namespace
    session.add(m.AuditEvent(actor=actor, action=action, subject=subject, details=details, namespace=ns))


def record_refusal(reg: Registry, refusal: Refusal) -> None:
    """Its own transaction: the refused one has rolled back. An event of the namespace refused, so a
    principal that could not see that namespace cannot see the event either."""
    with transaction(reg.sessions) as session:
        record(
            session,
            refusal.principal,
            "refused",
            refusal.subject[:256],
            namespace=refusal.namespace,
            attempted=refusal.action,
            needs=refusal.needs,
            has=refusal.has,
            why=refusal.why,
        )
