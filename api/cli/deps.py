"""The service context for one CLI invocation."""

from functools import lru_cache

from registry.service import Registry


@lru_cache(maxsize=1)
def registry() -> Registry:
    return Registry.from_env()
