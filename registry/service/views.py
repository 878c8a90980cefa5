"""The service layer's views live in registry.views (shared with the light registry.client)."""

from ..views import (
    AdapterView,
    ArtifactMatch,
    AuditEventView,
    BaseModelView,
    KeyView,
    LineageEdgeView,
    LineageGraph,
    LineageNode,
    Page,
    VersionView,
)

__all__ = [
    "AdapterView",
    "ArtifactMatch",
    "AuditEventView",
    "BaseModelView",
    "KeyView",
    "LineageEdgeView",
    "LineageGraph",
    "LineageNode",
    "Page",
    "VersionView",
]
