"""Reading the audit log, on Core over registry.catalog.tables: the REST API and the CLI's local mode
(`pemreg audit-log` imports no ORM: tests/test_cli_local_reads.py). A reader sees only the events of
namespaces it may read, decided inside the query; registry.service.catalog.audit writes them."""

from __future__ import annotations

import re
from typing import Any

from registry.catalog.prepared.statement import ReadConnection, ReadStatement
from registry.refs import NAME_PATTERN
from registry.service.access.standing import bound
from registry.service.catalog.source import CatalogSource
from registry.views import AuditEventView

_SUBJECT = re.compile(rf"^({NAME_PATTERN})(@.*)?$")
_STATEMENTS = "registry.service.catalog.audit_statements"
EVENTS = ReadStatement(f"{_STATEMENTS}:events")
VISIBLE = ReadStatement(f"{_STATEMENTS}:visible_namespaces")
DIGESTS = ReadStatement(f"{_STATEMENTS}:digests")


def namespace_of(subject: str) -> str | None:
    """`acme` for `acme/math`, `acme/math@3`, `acme/math@3:merged`; None for `key:...`, `base:...`."""
    found = _SUBJECT.match(subject)
    return found.group(1).split("/", 1)[0] if found else None


def list_events(
    src: CatalogSource, *, subject: str | None = None, actor: str | None = None, limit: int = 100
) -> list[AuditEventView]:
    access = src.acting
    values: dict[str, Any] = {"limit": limit, **bound(access)}
    if subject:
        values["subject"], values["subject_at"] = subject, f"{subject}@"
    if actor:
        values["actor"] = actor
    with src.reading() as db:
        rows = db.rows(EVENTS, (access.is_admin, bool(subject), bool(actor)), values)
        named = {ns for row in rows for label in _inputs(row) if (ns := namespace_of(label))}
        seen = named
        if named and not access.is_admin:
            seen = {ns for (ns,) in db.rows(VISIBLE, None, {"names": sorted(named), **bound(access)})}
        hidden = {label for row in rows for label in _inputs(row) if namespace_of(label) not in seen}
        digests = _digests(db, hidden)
    return [AuditEventView.of(row, _redacted(row, seen, digests)) for row in rows]


def _inputs(row: Any) -> list[str]:
    items = (row.details or {}).get("inputs")
    return [i for i in items if isinstance(i, str)] if isinstance(items, list) else []


def _digests(db: ReadConnection, labels: set[str]) -> dict[str, str]:
    """`ns/name@N` -> its weights digest, for the inputs shown as hidden (as lineage shows them)."""
    versions = []
    for label in sorted(labels):
        name, _, version = label.rpartition("@")
        if "/" in name and version.isdigit():
            versions.append((*name.split("/", 1), int(version)))
    if not versions:
        return {}
    rows = db.rows(DIGESTS, None, {"versions": versions})
    return {f"{ns}/{name}@{version}": sha for ns, name, version, sha in rows}


def _redacted(row: Any, seen: set[str], digests: dict[str, str]) -> dict[str, Any]:
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
