"""The namespace reads' statements (registry.service.access.namespace_reads, standing.held): Core over
registry.catalog.tables, built on the server and compiled for the CLI's local reads
(registry.catalog.prepared). A principal's subjects are bound one by one (`subject_0`...): their number
is part of the shape, so no statement binds a list (standing.subject_values)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, String, bindparam, exists, select

from registry.catalog import tables as t
from registry.service.access.policy import readable_bound

_ns, _grant = t.namespaces.c, t.namespace_grants.c


def _subjects(count: int) -> Any:
    return _grant.subject.in_([bindparam(f"subject_{i}", type_=String) for i in range(count)])


def readable_namespaces(admin: bool) -> Select[Any]:
    """The namespaces the reader may read, by name."""
    return select(t.namespaces).where(readable_bound(admin, _ns.name)).order_by(_ns.name)


def grants_of_subjects(count: int) -> Select[Any]:
    """The grants naming one of the reader's `count` subjects, in every namespace."""
    columns = (_grant.namespace, _grant.role, _grant.subject)
    return select(*columns).where(_subjects(count)).order_by(_grant.namespace, _grant.subject)


def owned_namespaces(admin: bool) -> Select[Any]:
    """The namespaces the reader may read that have at least one grant."""
    readable = select(_ns.name).where(readable_bound(admin, _ns.name))
    return select(_grant.namespace).where(_grant.namespace.in_(readable)).distinct()


def namespace(_: None) -> Select[Any]:
    return select(t.namespaces).where(_ns.name == bindparam("namespace", type_=String))


def held(count: int) -> Select[Any]:
    """In `namespace`, the grants naming one of the reader's `count` subjects (subject, role)."""
    named = bindparam("namespace", type_=String)
    return select(_grant.subject, _grant.role).where(_grant.namespace == named, _subjects(count))


def owned(_: None) -> Select[Any]:
    return select(exists().where(_grant.namespace == bindparam("namespace", type_=String)).label("owned"))


def grants(_: None) -> Select[Any]:
    """Every grant of `namespace`, by subject."""
    return (
        select(_grant.namespace, _grant.subject, _grant.role, _grant.granted_by, _grant.granted_at)
        .where(_grant.namespace == bindparam("namespace", type_=String))
        .order_by(_grant.subject)
    )
