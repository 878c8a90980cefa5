"""The service layer: every shell (CLI, REST, flows) calls these functions and nothing below them.

The names below load on first use (PEP 562), so importing one submodule (e.g. registry.service.queries
for `pemreg adapters list`) does not import every other one (registration, stores, base models...).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

_WHERE = {
    "Registry": "context",
    "add_base_model": "base_models",
    "digest_of": "artifacts",
    "download_version": "downloads",
    "find_by_digest": "artifacts",
    "get_version": "queries",
    "lineage": "lineage",
    "list_adapters": "queries",
    "list_base_models": "base_models",
    "list_events": "audit",
    "parse_tags": "register",
    "register_adapter": "register",
    "set_alias": "aliases",
    "show_adapter": "queries",
}

__all__ = [
    "Registry",
    "add_base_model",
    "digest_of",
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
    from .aliases import set_alias
    from .artifacts import digest_of, find_by_digest
    from .audit import list_events
    from .base_models import add_base_model, list_base_models
    from .context import Registry
    from .downloads import download_version
    from .lineage import lineage
    from .queries import get_version, list_adapters, show_adapter
    from .register import parse_tags, register_adapter


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        # Importing the submodule `lineage` would bind `service.lineage` to the module; the package's
        # name is the function (as when this file imported it eagerly), which __getattr__ supplies.
        if name in _WHERE and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
