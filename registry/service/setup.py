"""`pemreg init`: migrate the catalog, make the store ready, and issue the first admin key."""

from __future__ import annotations

from ..catalog.migrate import upgrade
from .context import Registry
from .keys import count_keys, create_key


def initialize(reg: Registry) -> str | None:
    """Idempotent. Returns the first admin key when none existed yet, else None."""
    upgrade(reg.settings.resolved_database_url)
    reg.store.ensure_ready()
    if count_keys(reg) == 0:
        return create_key(reg, "admin", "admin")
    return None
