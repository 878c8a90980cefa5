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
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)  # of model.safetensors
    architecture: Mapped[str | None] = mapped_column(String(128))
    # The base's config.json as registered (read from its folder), and its fingerprint
    # (registry.base_evidence.config_fingerprint): how an adapter whose config names a folder on the
    # caller's machine is matched to this row without the server reading that folder. None when the
    # source was not a readable folder (a hub id, s3://).
    config: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    config_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
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
    training: Mapped[list[TrainingValue]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="TrainingValue.id"
    )


TRAINING_KINDS = ("metric", "param", "dataset")


class TrainingValue(Base):
    """One entry of a version's training record, as given at registration (`--metric k=v`,
    `--param k=v`, `--dataset URI`), like an MLflow run's metrics, params and inputs. One row per
    entry so a search (`metric=acc>=0.8`, `param=lr:1e-4`, `dataset=URI`) is an index lookup."""

    __tablename__ = "training_values"
    __table_args__ = (
        CheckConstraint("kind IN ('metric', 'param', 'dataset')", name="kind"),
        UniqueConstraint("version_id", "kind", "name", "value"),
        Index("ix_training_values_lookup", "kind", "name", "value"),
        Index("ix_training_values_metric", "kind", "name", "number"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("adapter_versions.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(128))  # metric / param name; "" for a dataset
    value: Mapped[str] = mapped_column(String(1024))  # param value, dataset URI, metric as written
    number: Mapped[float | None] = mapped_column(Float)  # a metric's value


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
    # Who stored the spec (key:<name>, user:<sub>, or the operator's bare name), checked again when a
    # run starts (scheduled, recomposed, retried). For a key, `api_key_id` is that key's row: its runs
    # stop once it is revoked, even when a new key reuses its name. Derived runs inherit both.
    principal: Mapped[str] = mapped_column(String(128))
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
    # The lambda search's record (registry.service.compositions.records.SearchRecord), null without one.
    search: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # The output's namespace; with `CompositionNamespace` (the inputs'), what decides who sees the run.
    namespace: Mapped[str | None] = mapped_column(String(64))


class CompositionNamespace(Base):
    """A namespace a run's inputs come from: the run (its spec names them) is visible only to principals
    who may read every one of them and its output's (the query's predicate, not a filter after it)."""

    __tablename__ = "composition_namespaces"

    composition_id: Mapped[str] = mapped_column(
        ForeignKey("compositions.id", ondelete="CASCADE"), primary_key=True
    )
    namespace: Mapped[str] = mapped_column(String(64), primary_key=True)


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
    __table_args__ = (
        Index("ix_audit_events_subject_at", "subject", "at"),
        Index("ix_audit_events_namespace_id", "namespace", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(128), index=True)
    action: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(256))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The namespace the event is about (None: registry-wide, e.g. keys, base models): who may read the
    # event is decided on this column, inside the listing's query (registry.service.access.policy).
    namespace: Mapped[str | None] = mapped_column(String(64))


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


NAMESPACE_VISIBILITIES = ("internal", "private")
NAMESPACE_ROLES = ("reader", "writer", "maintainer")  # ascending


class Namespace(Base):
    """The `ns` of `ns/name` as an object: who sees it (`internal`: every signed-in principal; `private`:
    grantees only), which aliases only maintainers move (glob patterns), and its grants."""

    __tablename__ = "namespaces"
    __table_args__ = (CheckConstraint("visibility IN ('internal', 'private')", name="visibility"),)

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    visibility: Mapped[str] = mapped_column(String(16), default="internal", server_default="internal")
    protected_aliases: Mapped[list[Any]] = mapped_column(default=list)
    description: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class NamespaceGrant(Base):
    """(namespace, subject, role): subject `key:<name>`, `user:<sub>` or `group:<name>`."""

    __tablename__ = "namespace_grants"
    __table_args__ = (
        CheckConstraint("role IN ('reader', 'writer', 'maintainer')", name="role"),
        # The policy's lookup: the namespaces a principal's subjects are granted.
        Index("ix_namespace_grants_subject_namespace", "subject", "namespace"),
    )

    namespace: Mapped[str] = mapped_column(
        ForeignKey("namespaces.name", ondelete="CASCADE"), primary_key=True
    )
    subject: Mapped[str] = mapped_column(String(256), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    granted_by: Mapped[str] = mapped_column(String(128))
    granted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SsoUser(Base):
    """An SSO principal as last seen (its groups claim): what a run it stored acts with when it starts
    later (a schedule, a recomposition), when no token of the user is at hand."""

    __tablename__ = "sso_users"

    principal: Mapped[str] = mapped_column(String(128), primary_key=True)  # user:<sub>
    groups: Mapped[list[Any]] = mapped_column(default=list)
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


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


class Webhook(Base):
    """A receiver of events (registry.service.events). The secret signs every delivery, so it is kept
    (not hashed); after a rotation the previous one also signs until `previous_secret_until`."""

    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[Any]] = mapped_column(default=list)  # event types; empty = every type
    namespace: Mapped[str | None] = mapped_column(String(64))
    alias_pattern: Mapped[str | None] = mapped_column(String(128))  # glob over alias events' alias
    description: Mapped[str | None] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(128))
    previous_secret: Mapped[str | None] = mapped_column(String(128))
    previous_secret_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    owner: Mapped[str] = mapped_column(String(128))  # whose read rights decide private namespaces' events
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WebhookEvent(Base):
    """The outbox: one row per event, written in the transaction of the change that caused it."""

    __tablename__ = "webhook_events"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # `msg_<hex>`: the webhook-id header
    type: Mapped[str] = mapped_column(String(48))
    namespace: Mapped[str | None] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)  # the exact JSON every attempt sends and signs
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


DELIVERY_STATUSES = ("pending", "delivered", "dead")


class WebhookDelivery(Base):
    """One event for one webhook: pending (due at next_attempt_at) until delivered, or dead once the
    retry window closes. A claimed attempt pushes next_attempt_at past its lease and sets claimed_by."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("webhook_id", "event_id"),
        CheckConstraint("status IN ('pending', 'delivered', 'dead')", name="status"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),  # the claim query
        Index("ix_webhook_deliveries_webhook_created", "webhook_id", "created_at"),  # history
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(ForeignKey("webhook_events.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The retry window (PEMREG_WEBHOOK_RETRY_HOURS) runs from here: creation, or the last redeliver.
    retry_from: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(128))  # host:pid of the attempt in flight
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_latency_ms: Mapped[float | None] = mapped_column(Float)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    event: Mapped[WebhookEvent] = relationship(lazy="selectin")


class WebhookAttempt(Base):
    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    response: Mapped[str | None] = mapped_column(Text)  # the start of the receiver's answer
    worker: Mapped[str | None] = mapped_column(String(128))  # host:pid of the deliverer that made it


class WebSession(Base):
    """A signed-in web session, by API key or through single sign-on. The cookie carries a random token
    (signed); the row holds its sha256, so sign-out (or the key's revocation) ends the session on the
    server, not only in the browser."""

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex of the cookie's token
    principal: Mapped[str] = mapped_column(String(128))  # key:<name> | user:<sub>
    # A key session: open only while this key row is active (a new key reusing the name never revives it).
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"), index=True)
    # An SSO session: the groups its ID token carried at sign-in (roles are read again on every page).
    groups: Mapped[list[Any]] = mapped_column(default=list)
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
