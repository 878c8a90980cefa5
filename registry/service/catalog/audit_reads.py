"""Reading the audit log, on Core over registry.catalog.tables: the REST API and the CLI's local mode
(`pemreg audit-log` imports no ORM: tests/test_cli_local_reads.py). A reader sees only the events of
namespaces it may read, decided inside the query; registry.service.catalog.audit writes them."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Row, or_, select, tuple_

from registry.catalog import tables as t
from registry.refs import NAME_PATTERN
from registry.service.access.policy import readable, visible_namespaces
from registry.service.catalog.source import CatalogSource
from registry.views import AuditEventView

_SUBJECT = re.compile(rf"^({NAME_PATTERN})(@.*)?$")
_e = t.audit_events.c


def namespace_of(subject: str) -> str | None:
    """`acme` for `acme/math`, `acme/math@3`, `acme/math@3:merged`; None for `key:...`, `base:...`."""
    found = _SUBJECT.match(subject)
    return found.group(1).split("/", 1)[0] if found else None


def list_events(
    src: CatalogSource, *, subject: str | None = None, actor: str | None = None, limit: int = 100
) -> list[AuditEventView]:
    access = src.acting
    query = (
        select(t.audit_events)
        .where(or_(_e.namespace.is_(None), readable(access, _e.namespace)))
        .order_by(_e.id.desc())
        .limit(limit)
    )
    if subject:
        # A subject names an object; "acme/x" also matches its versions "acme/x@3".
        query = query.where((_e.subject == subject) | _e.subject.startswith(f"{subject}@"))
    if actor:
        query = query.where(_e.actor == actor)
    with src.connect() as db:
        rows = db.execute(query).all()
        named = {ns for row in rows for label in _inputs(row) if (ns := namespace_of(label))}
        seen = set(
            named
            if access.is_admin
            else db.scalars(visible_namespaces(access).where(t.namespaces.c.name.in_(named)))
        )
        hidden = {label for row in rows for label in _inputs(row) if namespace_of(label) not in seen}
        digests = _digests(db, hidden)
    return [AuditEventView.of(row, _redacted(row, seen, digests)) for row in rows]


def _inputs(row: Row[Any]) -> list[str]:
    items = (row.details or {}).get("inputs")
    return [i for i in items if isinstance(i, str)] if isinstance(items, list) else []


def _digests(db: Any, labels: set[str]) -> dict[str, str]:
    """`ns/name@N` -> its weights digest, for the inputs shown as hidden (as lineage shows them)."""
    keys = []
    for label in labels:
        name, _, version = label.rpartition("@")
        if "/" in name and version.isdigit():
            keys.append((*name.split("/", 1), int(version)))
    if not keys:
        return {}
    a, v = t.adapters.c, t.adapter_versions.c
    rows = db.execute(
        select(a.namespace, a.name, v.version, v.sha256)
        .join(t.adapter_versions, v.adapter_id == a.id)
        .where(tuple_(a.namespace, a.name, v.version).in_(keys))
    )
    return {f"{ns}/{name}@{version}": sha for ns, name, version, sha in rows}


def _redacted(row: Row[Any], seen: set[str], digests: dict[str, str]) -> dict[str, Any]:
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
