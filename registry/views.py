"""What the service layer returns and `registry.client` receives: plain pydantic models the CLI prints
and the REST API serves. No SQLAlchemy at import (the catalog models are only named in type hints)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel as Model
from pydantic import Field

if TYPE_CHECKING:  # only for the `of` constructors: registry.client imports these views without SQLAlchemy
    from .catalog import models as m

T = TypeVar("T")


class BaseModelView(Model):
    name: str
    revision: str
    source: str
    sha256: str | None
    architecture: str | None
    config_sha256: str | None = None  # fingerprint of its config.json (registry.base_evidence)
    created_at: datetime

    @classmethod
    def of(cls, row: m.BaseModel) -> BaseModelView:
        return cls(
            name=row.name,
            revision=row.revision,
            source=row.source,
            sha256=row.sha256,
            architecture=row.architecture,
            config_sha256=row.config_sha256,
            created_at=row.created_at,
        )


class BaseModelDetail(BaseModelView):
    """`base-models show`: the base, who registered it and how, and the adapters that belong to it."""

    created_by: str
    auto_registered: bool  # registered on the way by an adapter's config, not by `base-models add`
    adapter_count: int
    adapters: list[str]  # namespace/name, first 100 by name


class BaseMerged(Model):
    """`base-models merge`: what moved from the removed base to the kept one."""

    merged: str  # name@revision, now gone
    into: str
    adapters: list[str]
    merged_models: int


class TrainingRecord(Model):
    """How a version was trained, as its registrant said (`--metric`, `--param`, `--dataset`)."""

    metrics: dict[str, float] = {}
    params: dict[str, str] = {}
    datasets: list[str] = []

    @property
    def empty(self) -> bool:
        return not (self.metrics or self.params or self.datasets)

    @classmethod
    def of_rows(cls, rows: list[m.TrainingValue]) -> TrainingRecord:
        return cls(
            metrics={r.name: float(r.number) for r in rows if r.kind == "metric" and r.number is not None},
            params={r.name: r.value for r in rows if r.kind == "param"},
            datasets=[r.value for r in rows if r.kind == "dataset"],
        )


class VersionView(Model):
    name: str
    version: int
    sha256: str
    pem_type: str
    base_model: str
    rank: int | None
    alpha: float | None
    use_rslora: bool
    target_modules: list[str]
    dtype: str
    size_bytes: int
    num_parameters: int
    files: dict[str, Any]
    artifact_uri: str
    aliases: list[str] = []
    created_by: str
    created_at: datetime
    status: str = "active"  # active | deprecated | archived | deleted
    status_changed_at: datetime | None = None
    training: TrainingRecord = Field(default_factory=TrainingRecord)

    @classmethod
    def of(cls, row: m.AdapterVersion, aliases: list[str] | None = None) -> VersionView:
        a = row.adapter
        return cls(
            name=a.full_name,
            version=row.version,
            sha256=row.sha256,
            pem_type=a.pem_type,
            base_model=a.base_model.name,
            rank=row.rank,
            alpha=row.alpha,
            use_rslora=row.use_rslora,
            target_modules=row.target_modules,
            dtype=row.dtype,
            size_bytes=row.size_bytes,
            num_parameters=row.num_parameters,
            files=row.files,
            artifact_uri=row.artifact_uri,
            aliases=sorted(aliases or []),
            created_by=row.created_by,
            created_at=row.created_at,
            status=row.status,
            status_changed_at=row.status_changed_at,
            training=TrainingRecord.of_rows(row.training),
        )


class AdapterView(Model):
    name: str
    pem_type: str
    task: str | None
    description: str | None
    base_model: str
    base_model_revision: str
    tags: dict[str, str]
    latest_version: int | None
    aliases: dict[str, int] = {}
    versions: list[VersionView] | None = None  # filled by `show`, not by listings
    created_at: datetime
    updated_at: datetime


class Page(Model, Generic[T]):
    items: list[T]
    next_page_token: str | None


class LineageNode(Model):
    name: str
    version: int
    sha256: str
    depth: int
    status: str = "active"  # a deleted version stays in the graph with its digest


class LineageEdgeView(Model):
    parent: str  # name@version
    child: str
    operator: str
    weight: float
    composition_id: str | None


class LineageGraph(Model):
    root: str
    direction: str
    nodes: list[LineageNode]
    edges: list[LineageEdgeView]


class AuditEventView(Model):
    id: int
    at: datetime
    actor: str
    action: str
    subject: str
    details: dict[str, Any]

    @classmethod
    def of(cls, row: m.AuditEvent) -> AuditEventView:
        return cls(
            id=row.id, at=row.at, actor=row.actor, action=row.action, subject=row.subject, details=row.details
        )


class ArtifactMatch(Model):
    """One registered object whose file has the digest asked about."""

    kind: str  # adapter_version | merged_model
    name: str
    version: int | None
    file: str
    sha256: str
    ancestry: LineageGraph | None = None
    status: str | None = None  # of the adapter version (None for merged models)


class KeyView(Model):
    """An API key as listed to admins: never the secret nor its hash."""

    name: str
    role: str
    created_by: str
    created_at: datetime
    revoked_at: datetime | None
