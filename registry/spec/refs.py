"""The spec language's view of adapter references: the grammar lives in registry/refs.py."""

from registry.refs import ADAPTER_NAME_PATTERN, REF_RE, Ref

__all__ = ["ADAPTER_NAME_PATTERN", "REF_RE", "Ref"]
