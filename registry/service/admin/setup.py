"""`pemreg init`: migrate the catalog, make the store ready, and issue the first admin key."""

from __future__ import annotations

from registry.catalog.migrate import upgrade
from registry.service.admin.keys import count_keys, create_key
from registry.service.context import Registry


def initialize(reg: Registry, *, first_key: bool = True) -> str | None:
    """Idempotent. Returns the first admin key when none existed yet, else None. `first_key=False`
    (`pemreg demo`, which shows no key) leaves the catalog without one, so a later `pemreg init`
    still issues and prints it: a key nobody saw is never the first one."""
    upgrade(reg.settings.resolved_database_url)
    reg.store.ensure_ready()
    if first_key and count_keys(reg) == 0:
        return create_key(reg, "admin", "admin")
    return None
