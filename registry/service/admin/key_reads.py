"""Reads of the API key table in Core (no ORM): the listing `pemreg keys list` prints, and the lookup
every authenticated request makes (registry.service.admin.keys.authenticate)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from registry.catalog.clock import utc
from registry.catalog.prepared.statement import ReadStatement
from registry.service.catalog.source import CatalogSource
from registry.views import KeyView

if TYPE_CHECKING:
    from sqlalchemy import Row, Select

KEYS = ReadStatement("registry.service.admin.key_reads:keys_statement")


def keys_statement(include_revoked: bool) -> Select[Any]:
    """The keys by name (a builder: registry.catalog.prepared)."""
    from sqlalchemy import select

    from registry.catalog import tables as t

    k = t.api_keys.c
    query = select(k.name, k.role, k.created_by, k.created_at, k.revoked_at).order_by(k.name)
    return query if include_revoked else query.where(k.revoked_at.is_(None))


def list_keys(reg: CatalogSource, *, include_revoked: bool = True) -> list[KeyView]:
    with reg.reading() as db:
        rows = db.rows(KEYS, include_revoked)
    return [
        KeyView(
            name=k.name,
            role=k.role,
            created_by=k.created_by,
            created_at=utc(k.created_at),
            revoked_at=utc(k.revoked_at),
        )
        for k in rows
    ]


def active_keys(reg: CatalogSource, prefix: str) -> list[Row[Any]]:
    """The active keys whose lookup prefix is `prefix` (id, name, role, key_hash): in practice one."""
    from sqlalchemy import select

    from registry.catalog import tables as t

    k = t.api_keys.c
    query = select(k.id, k.name, k.role, k.key_hash).where(k.prefix == prefix, k.revoked_at.is_(None))
    with reg.connect() as db:
        return list(db.execute(query).all())
