"""The service layer: every shell (CLI, REST, flows) calls these functions and nothing below them."""

from .aliases import set_alias
from .artifacts import digest_of, find_by_digest
from .audit import list_events
from .base_models import add_base_model, list_base_models
from .context import Registry
from .downloads import download_version
from .lineage import lineage
from .queries import get_version, list_adapters, show_adapter
from .register import parse_tags, register_adapter

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
