"""The service layer: every shell (CLI, REST, flows) calls these functions and nothing below them.

Four sub-packages, one job each:
- `catalog`: reads and edits of what is registered (versions, aliases, lifecycle, lineage, audit, digests).
- `registration`: bringing new bytes in (adapters, base models) and checking them against their base.
- `compositions`: a composition run, from spec to registered output (inputs, dry run, lifecycle, output).
- `admin`: operating the registry (keys, gc, init).

The names below load on first use (PEP 562), so importing one submodule (e.g. registry.service.catalog.queries
for `pemreg adapters list`) does not import every other one (registration, stores, base models...).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {
    "Registry": "context",
    "add_base_model": "registration.base_models",
    "download_version": "catalog.downloads",
    "find_by_digest": "catalog.digests",
    "get_version": "catalog.queries",
    "lineage": "catalog.lineage",
    "list_adapters": "catalog.queries",
    "list_base_models": "registration.base_reads",
    "list_events": "catalog.audit",
    "parse_tags": "registration.register",
    "register_adapter": "registration.register",
    "set_alias": "catalog.aliases",
    "show_adapter": "catalog.queries",
}

__all__ = [
    "Registry",
    "add_base_model",
    "download_version",
    "find_by_digest",
    "get_version",
    "lineage",
    "list_adapters",
    "list_base_models",
    "list_events",
    "parse_tags",
    "register_adapter",
    "set_alias",
    "show_adapter",
]

if TYPE_CHECKING:
    from registry.service.catalog.aliases import set_alias
    from registry.service.catalog.audit import list_events
    from registry.service.catalog.digests import find_by_digest
    from registry.service.catalog.downloads import download_version
    from registry.service.catalog.lineage import lineage
    from registry.service.catalog.queries import get_version, list_adapters, show_adapter
    from registry.service.context import Registry
    from registry.service.registration.base_models import add_base_model
    from registry.service.registration.base_reads import list_base_models
    from registry.service.registration.register import parse_tags, register_adapter


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value
