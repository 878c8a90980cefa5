"""The API key reads' statements (registry.service.admin.key_reads): Core over registry.catalog.tables,
built once per shape on the server (the lookup is on every authenticated request's path) and compiled
for the CLI's local reads (registry.catalog.prepared)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, String, bindparam, select

from registry.catalog import tables as t

_k = t.api_keys.c


def keys(include_revoked: bool) -> Select[Any]:
    """The keys by name, with the revoked ones or without."""
    query = select(_k.name, _k.role, _k.created_by, _k.created_at, _k.revoked_at).order_by(_k.name)
    return query if include_revoked else query.where(_k.revoked_at.is_(None))


def active_by_prefix(_: None) -> Select[Any]:
    """The active keys whose lookup prefix is `prefix` (id, name, role, key_hash)."""
    prefix = bindparam("prefix", type_=String)
    return select(_k.id, _k.name, _k.role, _k.key_hash).where(_k.prefix == prefix, _k.revoked_at.is_(None))
