"""Typed results: the service layer's own views (registry.views, no SQLAlchemy) plus the few REST
bodies that have no service view (views.Model too: each validator is built on first use)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ConfigDict

from ..views import (
    AdapterView,
    ArtifactMatch,
    AuditEventView,
    BaseModelView,
    GrantView,
    KeyView,
    LineageEdgeView,
    LineageGraph,
    LineageNode,
    Model,
    NamespaceView,
    Page,
    RunInput,
    SearchRecord,
    VersionView,
    WhoAmI,
    WhoAmIGrant,
)


class Registered(VersionView):
    created: bool  # False: these bytes were already this version (idempotent)
    notes: list[str] = []  # what happened on the way (a base model registered, a version brought back)


class KeyCreated(Model):
    name: str
    role: str
    key: str  # the secret, shown once


class AliasDeleted(Model):
    name: str
    alias: str
    version: int


class DownloadFile(Model):
    file: str
    sha256: str
    size: int
    url: str


class DownloadManifest(Model):
    name: str
    version: int
    sha256: str
    expires_in: int | None
    files: list[DownloadFile]


class CompositionOutput(Model):
    name: str
    version: int
    sha256: str


class Composition(Model):
    """A composition run as GET /v1/compositions/{id} answers it (fields added later are kept)."""

    model_config = ConfigDict(extra="allow")

    id: str
    status: str  # pending | running | succeeded | failed | rejected
    name: str
    method: str
    flow_run_id: str | None = None
    output: CompositionOutput | None = None
    metrics: dict[str, Any] = {}
    interference: dict[str, Any] = {}
    inputs: list[RunInput] = []  # written and applied weights
    search: SearchRecord | None = None  # a lambda search's candidates and winner
    error: str | None = None
    cache_key: str | None = None
    cache_hit: bool = False
    trigger: str = "api"
    principal: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def done(self) -> bool:
        return self.status in ("succeeded", "failed", "rejected")


__all__ = [
    "AdapterView",
    "AliasDeleted",
    "ArtifactMatch",
    "AuditEventView",
    "BaseModelView",
    "Composition",
    "CompositionOutput",
    "DownloadFile",
    "DownloadManifest",
    "GrantView",
    "KeyCreated",
    "KeyView",
    "LineageEdgeView",
    "LineageGraph",
    "LineageNode",
    "NamespaceView",
    "Page",
    "Registered",
    "VersionView",
    "WhoAmI",
    "WhoAmIGrant",
]
