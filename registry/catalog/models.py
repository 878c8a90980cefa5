"""Catalog schema (SQLAlchemy 2 typed ORM) for every catalog object (base models, adapters, versions,
aliases, lineage, compositions, audit events, API keys).

The tables catalog reads touch are defined once, in Core, in registry.catalog.tables (reads select from
them without importing the ORM); the classes below map onto them (`__table__`) and declare the rest on
the same metadata. Migrations in migrations/versions must match this metadata exactly (a test
autogenerates and expects no diff). Timestamps are stored timezone-aware in UTC.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from . import tables as t
from .tables import (  # noqa: F401 - writers import these names from here
    NAMESPACE_ROLES,
    NAMESPACE_VISIBILITIES,
    NAMING,
    TRAINING_KINDS,
    VERSION_STATUSES,
    BigId,
    utcnow,
)


class Base(DeclarativeBase):
    metadata = t.metadata
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class BaseModel(Base):
    __table__ = t.base_models

    id: Mapped[int]
    name: Mapped[str]
    revision: Mapped[str]
    source: Mapped[str]
    sha256: Mapped[str | None]
    architecture: Mapped[str | None]
    config: Mapped[dict[str, Any] | None]
    config_sha256: Mapped[str | None]
    created_by: Mapped[str]
    created_at: Mapped[datetime]


class Adapter(Base):
    __table__ = t.adapters

    id: Mapped[int]
    namespace: Mapped[str]
    name: Mapped[str]
    pem_type: Mapped[str]
    task: Mapped[str | None]
    description: Mapped[str | None]
    base_model_id: Mapped[int]
    created_by: Mapped[str]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    base_model: Mapped[BaseModel] = relationship(lazy="joined")
    tags: Mapped[list[AdapterTag]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="AdapterTag.key"
    )

    @property
    def full_name(self) -> str:
        return f"{self.namespace}/{self.name}"


class AdapterTag(Base):
    __table__ = t.adapter_tags

    adapter_id: Mapped[int]
    key: Mapped[str]
    value: Mapped[str]


class AdapterVersion(Base):
    __table__ = t.adapter_versions

    id: Mapped[int]
    adapter_id: Mapped[int]
    version: Mapped[int]
    sha256: Mapped[str]
    rank: Mapped[int | None]
    alpha: Mapped[float | None]
    use_rslora: Mapped[bool]
    target_modules: Mapped[list[Any]]
    dtype: Mapped[str]
    size_bytes: Mapped[int]
    num_parameters: Mapped[int]
    files: Mapped[dict[str, Any]]
    extra: Mapped[dict[str, Any]]
    artifact_uri: Mapped[str]
    created_by: Mapped[str]
    created_at: Mapped[datetime]
    status: Mapped[str]
    status_changed_by: Mapped[str | None]
    status_changed_at: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]

    adapter: Mapped[Adapter] = relationship(lazy="joined")
    training: Mapped[list[TrainingValue]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="TrainingValue.id"
    )


class TrainingValue(Base):
    __table__ = t.training_values

    id: Mapped[int]
    version_id: Mapped[int]
    kind: Mapped[str]
    name: Mapped[str]
    value: Mapped[str]
    number: Mapped[float | None]


class Alias(Base):
    __table__ = t.aliases

    adapter_id: Mapped[int]
    alias: Mapped[str]
    version_id: Mapped[int]
    updated_by: Mapped[str]
    updated_at: Mapped[datetime]


class LineageEdge(Base):
    __table__ = t.lineage_edges

    id: Mapped[int]
    parent_version_id: Mapped[int]
    child_version_id: Mapped[int]
    operator: Mapped[str]
    weight: Mapped[float]
    composition_id: Mapped[str | None]


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
    __table__ = t.audit_events

    id: Mapped[int]
    at: Mapped[datetime]
    actor: Mapped[str]
    action: Mapped[str]
    subject: Mapped[str]
    details: Mapped[dict[str, Any]]
    namespace: Mapped[str | None]


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


class Namespace(Base):
    __table__ = t.namespaces

    name: Mapped[str]
    visibility: Mapped[str]
    protected_aliases: Mapped[list[Any]]
    description: Mapped[str | None]
    created_by: Mapped[str]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class NamespaceGrant(Base):
    __table__ = t.namespace_grants

    namespace: Mapped[str]
    subject: Mapped[str]
    role: Mapped[str]
    granted_by: Mapped[str]
    granted_at: Mapped[datetime]


class SsoUser(Base):
    """An SSO principal as last seen (its groups claim): what a run it stored acts with when it starts
    later (a schedule, a recomposition), when no token of the user is at hand."""

    __tablename__ = "sso_users"

    principal: Mapped[str] = mapped_column(String(128), primary_key=True)  # user:<sub>
    groups: Mapped[list[Any]] = mapped_column(default=list)
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiKey(Base):
    __table__ = t.api_keys

    id: Mapped[int]
    name: Mapped[str]
    role: Mapped[str]
    prefix: Mapped[str]
    key_hash: Mapped[str]
    created_by: Mapped[str]
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


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


# One active key per name; a revoked key's name may be given to a new key (the old row stays).
Index(
    "uq_api_keys_active_name",
    t.api_keys.c.name,
    unique=True,
    postgresql_where=text("revoked_at IS NULL"),
    sqlite_where=text("revoked_at IS NULL"),
)

# The indexes `q` is served by, PostgreSQL only (migration 0013): a trigram GIN index on search_text
# for rare terms (pg_trgm is a PostgreSQL extension, and SQLite cannot use any index for a
# leading-wildcard LIKE), and search_text beside the listing's order, which a common term walks
# index-only, stopping at the page's last match without reading the table.
# fastupdate off: registrations are rare and searches frequent; with the default pending list, every
# search scans all rows inserted since the last vacuum linearly (measured: ~6 ms at 5k fresh rows).
# The GIN index on tag_set (migration 0014) is PostgreSQL's too: SQLite filters tags by adapter_tags.
POSTGRES_ONLY_INDEXES = frozenset(
    {
        "ix_adapters_search_text",
        "ix_adapters_order_search",
        "ix_adapters_tag_set",
        "ix_search_vocabulary_word",
    }
)
# The word index of a common search term (tables.search_words, migration 0016): its triggers split
# search_text with a regular expression, which SQLite has not, and SQLite's listings never read it.
# So is the tag index of a tag filter (tables.tag_entries, migration 0017): SQLite probes adapter_tags.
POSTGRES_ONLY_TABLES = frozenset({"search_words", "search_vocabulary", "tag_entries"})


def compared_on(dialect: str) -> Callable[[Any, str | None, str, bool, Any], bool]:
    """Alembic's include_object for a database of `dialect`: on SQLite, leave out the tables and indexes
    declared for PostgreSQL only (autogenerate and the migration tests would otherwise expect them)."""

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if dialect == "postgresql":
            return True
        if type_ == "table":
            return name not in POSTGRES_ONLY_TABLES
        if type_ == "index":
            table = getattr(getattr(obj, "table", None), "name", None)
            return name not in POSTGRES_ONLY_INDEXES and table not in POSTGRES_ONLY_TABLES
        return True

    return include


Index(
    "ix_adapters_search_text",
    t.adapters.c.search_text,
    postgresql_using="gin",
    postgresql_ops={"search_text": "gin_trgm_ops"},
    postgresql_with={"fastupdate": "off"},
).ddl_if(dialect="postgresql")
# Tag filters (tables.adapters.c.tag_set): `@>` of several tags intersects their posting lists.
Index(
    "ix_adapters_tag_set",
    t.adapters.c.tag_set,
    postgresql_using="gin",
    postgresql_with={"fastupdate": "off"},
).ddl_if(dialect="postgresql")
# Which words contain a term (queries.list_adapters' word index), as search_text's index answers it.
Index(
    "ix_search_vocabulary_word",
    t.search_vocabulary.c.word,
    postgresql_using="gin",
    postgresql_ops={"word": "gin_trgm_ops"},
    postgresql_with={"fastupdate": "off"},
).ddl_if(dialect="postgresql")
Index(
    "ix_adapters_order_search",
    t.adapters.c.namespace,
    t.adapters.c.name,
    postgresql_include=["id", "search_text"],
).ddl_if(dialect="postgresql")
