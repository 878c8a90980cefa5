"""What the service layer returns and `registry.client` receives: plain pydantic models the CLI prints
and the REST API serves. No SQLAlchemy at import (the catalog models are only named in type hints)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from .catalog.clock import utc

if TYPE_CHECKING:  # only for the `of` constructors: registry.client imports these views without SQLAlchemy
    from .catalog import models as m

T = TypeVar("T")


class Model(BaseModel):
    # Each view's validator is built on its first use, not at import: a command prints two or three of
    # these ~30 views, and building all of them cost the CLI ~25 ms of start-up.
    model_config = ConfigDict(defer_build=True)


class BaseModelView(Model):
    name: str
    revision: str
    source: str
    sha256: str | None
    architecture: str | None
    config_sha256: str | None = None  # fingerprint of its config.json (registry.base_evidence)
    created_at: datetime

    @classmethod
    def of(cls, row: Any) -> BaseModelView:
        """From an ORM BaseModel or a Core row of base_models."""
        return cls(
            name=row.name,
            revision=row.revision,
            source=row.source,
            sha256=row.sha256,
            architecture=row.architecture,
            config_sha256=row.config_sha256,
            created_at=utc(row.created_at),
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
    def of_rows(cls, rows: Sequence[m.TrainingValue] | Sequence[Any]) -> TrainingRecord:
        """From training_values rows: ORM objects or Core rows (same attribute names)."""
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
    def of_columns(cls, row: Any, full_name: str, pem_type: str, base_model: str, **kw: Any) -> VersionView:
        """The one constructor: a version's columns (an ORM AdapterVersion or a Core row of
        registry.service.catalog.resolve.VERSION_COLUMNS: the same attribute names) beside its adapter's
        name, PEM type and base; `kw` the rest (aliases, training). SQLite's naive timestamps are UTC."""
        return cls(
            name=full_name,
            version=row.version,
            sha256=row.sha256,
            pem_type=pem_type,
            base_model=base_model,
            rank=row.rank,
            alpha=row.alpha,
            use_rslora=row.use_rslora,
            target_modules=row.target_modules,
            dtype=row.dtype,
            size_bytes=row.size_bytes,
            num_parameters=row.num_parameters,
            files=row.files,
            artifact_uri=row.artifact_uri,
            created_by=row.created_by,
            created_at=utc(row.created_at),
            status=row.status,
            status_changed_at=utc(row.status_changed_at),
            **kw,
        )

    @classmethod
    def of(cls, row: m.AdapterVersion, aliases: list[str] | None = None) -> VersionView:
        a = row.adapter
        return cls.of_columns(
            row,
            a.full_name,
            a.pem_type,
            a.base_model.name,
            aliases=sorted(aliases or []),
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
    """A version in a lineage graph. One in a namespace the reader cannot see is its digest only:
    `{"hidden": true, "sha256": ..., "depth": ...}` with no name, version or status (and the walk does
    not continue past it)."""

    name: str | None
    version: int | None
    sha256: str
    depth: int
    status: str | None = "active"  # a deleted version stays in the graph with its digest
    hidden: bool = False

    @property
    def label(self) -> str:
        return f"sha256:{self.sha256}" if self.hidden else f"{self.name}@{self.version}"


class LineageEdgeView(Model):
    parent: str  # name@version, or sha256:<hex> for a hidden node
    child: str
    operator: str | None  # None on an edge into a hidden version (how it was made stays hidden)
    weight: float | None
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
    namespace: str | None = None  # what the event is about (None: registry-wide, e.g. keys)

    @classmethod
    def of(cls, row: Any, details: dict[str, Any] | None = None) -> AuditEventView:
        """From an ORM AuditEvent or a Core row of audit_events."""
        return cls(
            id=row.id,
            at=utc(row.at),
            actor=row.actor,
            action=row.action,
            subject=row.subject,
            details=row.details if details is None else details,
            namespace=row.namespace,
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


class NamespaceView(Model):
    """A namespace as its readers see it; `role` is the caller's own role there (and `via` why)."""

    name: str
    visibility: str  # internal | private
    protected_aliases: list[str]
    description: str | None
    owned: bool  # has grants (else keys' global roles apply, as before namespaces existed)
    created_by: str
    created_at: datetime
    updated_at: datetime
    role: str | None = None
    via: str | None = None


class GrantView(Model):
    namespace: str
    subject: str  # key:<name> | user:<sub> | group:<name>
    role: str  # reader | writer | maintainer
    granted_by: str
    granted_at: datetime


class WhoAmIGrant(Model):
    namespace: str
    role: str
    via: str  # the grant's subject: the principal itself or one of its groups


class WhoAmI(Model):
    principal: str  # key:<name> | user:<sub>
    groups: list[str]
    role: str  # the global role: reader | writer | admin
    grants: list[WhoAmIGrant]


# ---- composition runs -------------------------------------------------------------------------------


class SearchCandidate(Model):
    """One candidate of a search: the method (with the parameters it took), the weights of the searched
    inputs, the scale of the composed delta, every evaluation, the objective's value, the gates."""

    index: int
    weights: dict[str, float]  # by input name: the searched inputs only (the rest keep their weight)
    metrics: dict[str, float]
    # read from `passes_gates` too: the name runs recorded before search.methods (0012) stored
    gates_passed: bool = Field(validation_alias=AliasChoices("gates_passed", "passes_gates"))
    # None in records made before search.methods: the run's `method`
    method: str | None = None
    params: dict[str, Any] = {}  # the method's parameters as composed (rank resolved, defaults filled)
    scale: float = 1.0  # the composed delta's multiplier (search.scale)
    objective: float | None = None  # the objective evaluation's value (None in older records)
    winner: bool = False

    @property
    def passes_gates(self) -> bool:
        return self.gates_passed


class SearchRecord(Model):
    """What a search tried and picked: kept on the run (CLI, REST, client, web) and in provenance.json.
    The winner's method, scale and weights are what the run applied."""

    strategy: str
    objective: dict[str, Any]  # the spec's search.objective: {"evaluation", "goal"}
    candidates: list[SearchCandidate]
    winner: int  # a candidate's index
    winner_metrics: dict[str, float]

    @property
    def chosen(self) -> SearchCandidate | None:
        return next((c for c in self.candidates if c.index == self.winner), None)

    def applied(self, name: str, written: float) -> float:
        """The weight the run applied to input `name`: the winner's, or the spec's when not searched."""
        chosen = self.chosen
        return written if chosen is None else chosen.weights.get(name, written)


class RunInput(Model):
    """An input of a run: the version its reference resolved to, the weight the spec wrote and the weight
    the run applied (a lambda search's winner; otherwise the written one)."""

    ref: str  # as written in the spec
    name: str
    version: int
    sha256: str
    weight: float  # as written
    applied_weight: float
    pem_type: str
    base_model: str  # name@revision
    files: dict[str, Any] = {}

    @property
    def searched(self) -> bool:
        return self.applied_weight != self.weight
