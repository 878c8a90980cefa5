"""Audit log: every mutation writes one event inside the same transaction as the change; every refused
write is one event too (recorded by the shell that answered it, after its transaction rolled back).

Each event carries the namespace it is about (derived from `ns/name[@...]` subjects, or given), and a
reader sees only the events of namespaces it may read, decided inside the query.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import or_, select, tuple_
from sqlalchemy.orm import Session

from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.refs import NAME_PATTERN
from registry.service.access.policy import Refusal, readable, visible_namespaces
from registry.service.context import Registry
from registry.views import AuditEventView

_SUBJECT = re.compile(rf"^({NAME_PATTERN})(@.*)?$")
_DERIVE = object()


def namespace_of(subject: str) -> str | None:
    """`acme` for `acme/math`, `acme/math@3`, `acme/math@3:merged`; None for `key:...`, `base:...`."""
    found = _SUBJECT.match(subject)
    return found.group(1).split("/", 1)[0] if found else None


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


def list_events(
    reg: Registry, *, subject: str | None = None, actor: str | None = None, limit: int = 100
) -> list[AuditEventView]:
    access = reg.acting
    e = m.AuditEvent
    query = (
        select(e)
        .where(or_(e.namespace.is_(None), readable(access, e.namespace)))
        .order_by(e.id.desc())
        .limit(limit)
    )
    if subject:
        # A subject names an object; "acme/x" also matches its versions "acme/x@3".
        query = query.where((e.subject == subject) | e.subject.startswith(f"{subject}@"))
    if actor:
        query = query.where(e.actor == actor)
    with reg.sessions() as session:
        rows = list(session.scalars(query))
        named = {ns for row in rows for label in _inputs(row) if (ns := namespace_of(label))}
        seen = set(
            named
            if access.is_admin
            else session.scalars(visible_namespaces(access).where(m.Namespace.name.in_(named)))
        )
        hidden = {label for row in rows for label in _inputs(row) if namespace_of(label) not in seen}
        digests = _digests(session, hidden)
    return [AuditEventView.of(row, _redacted(row, seen, digests)) for row in rows]


def _inputs(row: m.AuditEvent) -> list[str]:
    items = (row.details or {}).get("inputs")
    return [i for i in items if isinstance(i, str)] if isinstance(items, list) else []


def _digests(session: Session, labels: set[str]) -> dict[str, str]:
    """`ns/name@N` -> its weights digest, for the inputs shown as hidden (as lineage shows them)."""
    keys = []
    for label in labels:
        name, _, version = label.rpartition("@")
        if "/" in name and version.isdigit():
            keys.append((*name.split("/", 1), int(version)))
    if not keys:
        return {}
    rows = session.execute(
        select(m.Adapter.namespace, m.Adapter.name, m.AdapterVersion.version, m.AdapterVersion.sha256)
        .join(m.AdapterVersion, m.AdapterVersion.adapter_id == m.Adapter.id)
        .where(tuple_(m.Adapter.namespace, m.Adapter.name, m.AdapterVersion.version).in_(keys))
    )
    return {f"{ns}/{name}@{version}": sha for ns, name, version, sha in rows}


def _redacted(row: m.AuditEvent, seen: set[str], digests: dict[str, str]) -> dict[str, Any]:
    """A run's trigger event lists its inputs by name: one of a namespace the reader cannot see is
    `{"hidden": true, "sha256": ...}`, as in lineage (the run itself is not shown to such a reader;
    its output's events are)."""
    details = dict(row.details or {})
    if _inputs(row):
        details["inputs"] = [
            label if namespace_of(label) in seen else {"hidden": True, "sha256": digests.get(label)}
            for label in details["inputs"]
        ]
    return details
