"""The audit log reads' statements (registry.service.catalog.audit_reads): Core over
registry.catalog.tables, built on the server and compiled for the CLI's local reads
(registry.catalog.prepared)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, Select, String, bindparam, or_, select, tuple_

from registry.catalog import tables as t
from registry.service.access.policy import readable_bound

_e, _a, _v, _ns = t.audit_events.c, t.adapters.c, t.adapter_versions.c, t.namespaces.c


def events(shape: tuple[bool, bool, bool]) -> Select[Any]:
    """The newest `limit` events the reader may see; `shape` is (admin, by subject, by actor). A subject
    names an object: `acme/x` also matches its versions' `acme/x@3` (`subject_at`: the subject and `@`)."""
    admin, by_subject, by_actor = shape
    query = (
        select(t.audit_events)
        .where(or_(_e.namespace.is_(None), readable_bound(admin, _e.namespace)))
        .order_by(_e.id.desc())
        .limit(bindparam("limit", type_=Integer))
    )
    if by_subject:
        subject, subject_at = bindparam("subject", type_=String), bindparam("subject_at", type_=String)
        query = query.where((_e.subject == subject) | _e.subject.startswith(subject_at))
    if by_actor:
        query = query.where(_e.actor == bindparam("actor", type_=String))
    return query


def visible_namespaces(_: None) -> Select[Any]:
    """Which of `names` a reader who is not an admin may read (policy.bound's subjects)."""
    names = bindparam("names", expanding=True, type_=String)
    return select(_ns.name).where(_ns.name.in_(names), readable_bound(False, _ns.name))


def digests(_: None) -> Select[Any]:
    """The weights digest of each version `versions` names: (namespace, name, version) triples, a list
    bound at execution (one IN of tuples, however many)."""
    named = tuple_(_a.namespace, _a.name, _v.version).in_(bindparam("versions", expanding=True))
    return (
        select(_a.namespace, _a.name, _v.version, _v.sha256)
        .join(t.adapter_versions, _v.adapter_id == _a.id)
        .where(named)
    )
