"""Reads of the API key table in Core (no ORM): the listing `pemreg keys list` prints, and the lookup
every authenticated request makes (registry.service.admin.keys.authenticate)."""

from __future__ import annotations

from typing import Any

from registry.catalog.clock import utc
from registry.catalog.prepared.statement import ReadStatement
from registry.service.catalog.source import CatalogSource
from registry.views import KeyView

KEYS = ReadStatement("registry.service.admin.key_statements:keys")
ACTIVE_BY_PREFIX = ReadStatement("registry.service.admin.key_statements:active_by_prefix")


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


def active_keys(reg: CatalogSource, prefix: str) -> list[Any]:
    """The active keys whose lookup prefix is `prefix` (id, name, role, key_hash): in practice one."""
    with reg.reading() as db:
        return db.rows(ACTIVE_BY_PREFIX, None, {"prefix": prefix})
