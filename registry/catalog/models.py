"""Catalog schema (SQLAlchemy 2 typed ORM) for every catalog object (base models, adapters, versions,
aliases, lineage, compositions, audit events, API keys).

Migrations in migrations/versions must match this module exactly (a test autogenerates and expects
no diff). Timestamps are stored timezone-aware in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ColumnElement,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    literal_column,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Deterministic constraint names keep Alembic downgrades and SQLite batch mode reliable.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BigInteger ids that still autoincrement on SQLite (which only does so for INTEGER PRIMARY KEY).
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class BaseModel(Base):
    __tablename__ = "base_models"
    __table_args__ = (UniqueConstraint("name", "revision"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(256), index=True)
    revision: Mapped[str] = mapped_column(String(128), default="main")
    source: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str | None] = mapped_column(String(64))
    architecture: Mapped[str | None] = mapped_column(String(128))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Adapter(Base):
    __tablename__ = "adapters"
    __table_args__ = (
        UniqueConstraint("namespace", "name"),
        Index("ix_adapters_filters", "base_model_id", "pem_type", "task"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    namespace: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128))
    pem_type: Mapped[str] = mapped_column(String(16), index=True)
    task: Mapped[str | None] = mapped_column(String(128), index=True)
    description: Mapped[str | None] = mapped_column(Text)
    base_model_id: Mapped[int] = mapped_column(ForeignKey("base_models.id", ondelete="RESTRICT"))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    base_model: Mapped[BaseModel] = relationship(lazy="joined")
    tags: Mapped[list[AdapterTag]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="AdapterTag.key"
    )

    @property
    def full_name(self) -> str:
        return f"{self.namespace}/{self.name}"


def _concat(left: Any, right: Any) -> ColumnElement[str]:
    return left.op("||", return_type=Text)(right)


def search_expressions(adapter: Any = None) -> tuple[ColumnElement[str], ...]:
    """What free-text search (`q`) matches, lowercased: full name, description, task.

    The trigram indexes below are built on exactly these expressions and list_adapters filters on
    them. The '/' must be a SQL literal: as a bind parameter PostgreSQL cannot match the expression
    index on the concatenation (it matches parsed expressions, and `$1` is not `'/'`).
    """
    a = adapter if adapter is not None else Adapter
    return (
        # Written `(ns || '/') || name`, as PostgreSQL stores it, so Alembic's compare sees no diff;
        # .op() because SQLAlchemy flattens (and un-parenthesises) chained .concat().
        func.lower(_concat(_concat(a.namespace, literal_column("'/'")), a.name)),
        func.lower(a.description),
        func.lower(a.task),
    )


class AdapterTag(Base):
    __tablename__ = "adapter_tags"
    # adapter_id in the index: a tag filter is an index-only scan yielding ids in order, so two tag
    # filters merge-join without touching the table (migration 0006; 37 -> 27 ms at 1M versions).
    __table_args__ = (Index("ix_adapter_tags_key_value_adapter", "key", "value", "adapter_id"),)

    adapter_id: Mapped[int] = mapped_column(ForeignKey("adapters.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(String(512))


# Version lifecycle (registry.service.catalog.lifecycle). A deleted version keeps its row, so lineage
# edges and
# the audit trail still name its digest; its objects become garbage for `pemreg gc` after a grace period.
VERSION_STATUSES = ("active", "deprecated", "archived", "deleted")


class AdapterVersion(Base):
    __tablename__ = "adapter_versions"
    __table_args__ = (
        UniqueConstraint("adapter_id", "version"),
        UniqueConstraint("adapter_id", "sha256"),
        CheckConstraint("status IN ('active', 'deprecated', 'archived', 'deleted')", name="status"),
        # The catalog's status filter: adapters with a version in a (rare) status, without a scan.
        Index("ix_adapter_versions_status_adapter", "status", "adapter_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    adapter_id: Mapped[int] = mapped_column(ForeignKey("adapters.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    rank: Mapped[int | None] = mapped_column(Integer)
    alpha: Mapped[float | None] = mapped_column(Float)
    use_rslora: Mapped[bool] = mapped_column(Boolean, default=False)
    target_modules: Mapped[list[Any]] = mapped_column(default=list)
    dtype: Mapped[str] = mapped_column(String(16))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    num_parameters: Mapped[int] = mapped_column(BigInteger)
    files: Mapped[dict[str, Any]] = mapped_column(default=dict)  # filename -> {sha256, size}
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)  # module shapes, source config
    artifact_uri: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default="active", server_default="active")
    status_changed_by: Mapped[str | None] = mapped_column(String(128))
    status_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # gc's grace clock

    adapter: Mapped[Adapter] = relationship(lazy="joined")


class Alias(Base):
    __tablename__ = "aliases"

    adapter_id: Mapped[int] = mapped_column(ForeignKey("adapters.id", ondelete="CASCADE"), primary_key=True)
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("adapter_versions.id", ondelete="CASCADE"), index=True)
    updated_by: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LineageEdge(Base):
    __tablename__ = "lineage_edges"
    __table_args__ = (
        UniqueConstraint("parent_version_id", "child_version_id"),
        Index("ix_lineage_edges_child", "child_version_id", "parent_version_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    parent_version_id: Mapped[int] = mapped_column(ForeignKey("adapter_versions.id", ondelete="CASCADE"))
    child_version_id: Mapped[int] = mapped_column(ForeignKey("adapter_versions.id", ondelete="CASCADE"))
    operator: Mapped[str] = mapped_column(String(32))
    weight: Mapped[float] = mapped_column(Float)
    composition_id: Mapped[str | None] = mapped_column(ForeignKey("compositions.id", ondelete="SET NULL"))


class Composition(Base):
    __tablename__ = "compositions"
    __table_args__ = (
        Index("ix_compositions_status_created", "status", "created_at"),
        Index("ix_compositions_status_heartbeat", "status", "heartbeat_at"),  # the reconcile query
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # run id (uuid) = the composition id
    cache_key: Mapped[str | None] = mapped_column(String(64), index=True)  # sha256 spec+inputs+engine
    output_name: Mapped[str] = mapped_column(String(193))
    method: Mapped[str] = mapped_column(String(32))
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)  # canonical spec
    resolved_inputs: Mapped[list[Any]] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    # The version this run registered (or found, on a cache hit): "which run made v" is derived from it.
    output_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("adapter_versions.id", ondelete="SET NULL"), index=True
    )
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    interference: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    trigger: Mapped[str] = mapped_column(String(16), default="cli")
    cache_hit: Mapped[bool] = mapped_column(Boolean, default=False)
    principal: Mapped[str] = mapped_column(String(128))
    # Who stored the spec, as the run lifecycle checks it again when a run starts: `local` (the user
    # on the server's machine) or `key` (then `api_key_id` is that key's row: a revoked key stays
    # revoked even when a new key reuses its name). Scheduled and recomposed runs inherit both.
    principal_kind: Mapped[str] = mapped_column(String(16), default="local", server_default="local")
    api_key_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Liveness of a pending/running run: refreshed by the process doing the work
    # (registry.service.compositions.runs).
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    worker: Mapped[str | None] = mapped_column(String(128))  # host:pid holding the run
    attempt: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # What the run measured about itself, e.g. {"device": [holds of the `gpu` slot]} (flows/device.py).
    timings: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'"))


class Evaluation(Base):
    __tablename__ = "evaluations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("adapter_versions.id", ondelete="CASCADE"), index=True)
    composition_id: Mapped[str | None] = mapped_column(ForeignKey("compositions.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(128))
    metric: Mapped[str] = mapped_column(String(32))
    dataset_uri: Mapped[str] = mapped_column(Text)
    dataset_sha256: Mapped[str | None] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class MergedModel(Base):
    __tablename__ = "merged_models"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    composition_id: Mapped[str | None] = mapped_column(ForeignKey("compositions.id", ondelete="SET NULL"))
    base_model_id: Mapped[int] = mapped_column(ForeignKey("base_models.id", ondelete="RESTRICT"))
    source_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("adapter_versions.id", ondelete="SET NULL")
    )
    name: Mapped[str] = mapped_column(String(193))
    sha256: Mapped[str] = mapped_column(String(64), index=True)  # digest over the shard digests
    files: Mapped[dict[str, Any]] = mapped_column(default=dict)
    artifact_uri: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_subject_at", "subject", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(128), index=True)
    action: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(256))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ArtifactFile(Base):
    """Digest -> the version or merged model holding that file: `find_by_digest` without scanning JSON.

    One row per entry of `AdapterVersion.files` / `MergedModel.files` (weights, config, README,
    provenance, shards), written by registry.service.catalog.artifact_index when the owner is registered.
    """

    __tablename__ = "artifact_files"
    __table_args__ = (
        # Exactly one owner; `kind` says which, so readers need not test both columns.
        CheckConstraint(
            "(kind = 'adapter_version' AND version_id IS NOT NULL AND merged_model_id IS NULL) OR "
            "(kind = 'merged_model' AND merged_model_id IS NOT NULL AND version_id IS NULL)",
            name="one_owner",
        ),
        # Also the FK indexes the owners' ON DELETE CASCADE needs.
        UniqueConstraint("version_id", "filename"),
        UniqueConstraint("merged_model_id", "filename"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # "adapter_version" | "merged_model"
    version_id: Mapped[int | None] = mapped_column(ForeignKey("adapter_versions.id", ondelete="CASCADE"))
    merged_model_id: Mapped[int | None] = mapped_column(ForeignKey("merged_models.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(512))

    # Set by object so the rows can be added before the owner is flushed and has an id.
    version: Mapped[AdapterVersion | None] = relationship()
    merged_model: Mapped[MergedModel | None] = relationship()


class ApiKey(Base):
    __tablename__ = "api_keys"
    # One active key per name; a revoked key's name may be given to a new key (the old row stays).
    __table_args__ = (
        Index(
            "uq_api_keys_active_name",
            "name",
            unique=True,
            postgresql_where=text("revoked_at IS NULL"),
            sqlite_where=text("revoked_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    prefix: Mapped[str] = mapped_column(String(16), index=True)  # non-secret, to find the row
    key_hash: Mapped[str] = mapped_column(String(128))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebSession(Base):
    """A signed-in web session. The cookie carries a random token (signed); the row holds its sha256,
    so sign-out (or the key's revocation) ends the session on the server, not only in the browser."""

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex of the cookie's token
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# Trigram GIN indexes for `q` (LIKE '%term%'), PostgreSQL only: pg_trgm is a PostgreSQL extension, and
# SQLite cannot use any index for a leading-wildcard LIKE, so there they would only slow writes.
# fastupdate off: registrations are rare and searches frequent; with the default pending list, every
# search scans all rows inserted since the last vacuum linearly (measured: ~6 ms at 5k fresh rows).
for _name, _expr in zip(
    ("ix_adapters_search_full_name", "ix_adapters_search_description", "ix_adapters_search_task"),
    search_expressions(Adapter.__table__.c),
    strict=True,
):
    Index(
        _name,
        _expr.label("expr"),
        postgresql_using="gin",
        postgresql_ops={"expr": "gin_trgm_ops"},
        postgresql_with={"fastupdate": "off"},
    ).ddl_if(dialect="postgresql")
