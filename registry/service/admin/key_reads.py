"""Reads of the API key table in Core (no ORM): the listing `pemreg keys list` prints, and the lookup
every authenticated request makes (registry.service.admin.keys.authenticate)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, select

from registry.catalog import tables as t
from registry.service.catalog.source import CatalogSource
from registry.views import KeyView

_k = t.api_keys.c


def list_keys(reg: CatalogSource, *, include_revoked: bool = True) -> list[KeyView]:
    query = select(_k.name, _k.role, _k.created_by, _k.created_at, _k.revoked_at).order_by(_k.name)
    if not include_revoked:
        query = query.where(_k.revoked_at.is_(None))
    with reg.connect() as db:
        rows = db.execute(query).all()
    return [
        KeyView(
            name=k.name,
            role=k.role,
            created_by=k.created_by,
            created_at=t.utc(k.created_at),
            revoked_at=t.utc(k.revoked_at),
        )
        for k in rows
    ]


def active_keys(reg: CatalogSource, prefix: str) -> list[Row[Any]]:
    """The active keys whose lookup prefix is `prefix` (id, name, role, key_hash): in practice one."""
    query = select(_k.id, _k.name, _k.role, _k.key_hash).where(_k.prefix == prefix, _k.revoked_at.is_(None))
    with reg.connect() as db:
        return list(db.execute(query).all())
