"""The base model reads' statements (registry.service.registration.base_reads): Core over
registry.catalog.tables, built on the server and compiled for the CLI's local reads
(registry.catalog.prepared)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, Select, String, bindparam, func, select

from registry.catalog import tables as t
from registry.service.access.policy import readable_bound

_b, _a, _e = t.base_models.c, t.adapters.c, t.audit_events.c


def bases(_: None) -> Select[Any]:
    return select(t.base_models).order_by(_b.name, _b.revision)


def named(with_revision: bool) -> Select[Any]:
    """The bases called `name` (at `revision`), oldest first (base_named.one_named's rule reads them)."""
    query = select(t.base_models).where(_b.name == bindparam("name", type_=String))
    if with_revision:
        query = query.where(_b.revision == bindparam("revision", type_=String))
    return query.order_by(_b.id)


def adapter_count(admin: bool) -> Select[Any]:
    """How many adapters of base `base_id` the reader may read."""
    mine = (_a.base_model_id == bindparam("base_id", type_=Integer), readable_bound(admin, _a.namespace))
    return select(func.count().label("count")).select_from(t.adapters).where(*mine)


def adapter_names(admin: bool) -> Select[Any]:
    """The first `limit` of them, by name."""
    mine = (_a.base_model_id == bindparam("base_id", type_=Integer), readable_bound(admin, _a.namespace))
    return (
        select(_a.namespace, _a.name)
        .where(*mine)
        .order_by(_a.namespace, _a.name)
        .limit(bindparam("limit", type_=Integer))
    )


def registration(_: None) -> Select[Any]:
    """The details of the event that registered the base `subject` (`base:NAME@REVISION`)."""
    return (
        select(_e.details)
        .where(_e.subject == bindparam("subject", type_=String), _e.action == "register_base_model")
        .order_by(_e.id)
        .limit(1)
    )
