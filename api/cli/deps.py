"""The service context for one CLI invocation (built on first use: commands that never touch the
catalog, e.g. `pemreg compose` handing its spec to the local runner, never import it)."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from registry.service import Registry


@lru_cache(maxsize=1)
def registry() -> Registry:
    from registry.service.context import Registry

    return Registry.from_env()
