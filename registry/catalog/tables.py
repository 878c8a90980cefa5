"""The catalog tables that reads touch, as SQLAlchemy Core `Table`s: the one definition of their schema.

registry.catalog.models maps its ORM classes onto these tables (`__table__`), so writers keep the ORM
and migrations compare against the same metadata; catalog reads (listings, version lookups, lineage,
keys, the authorization policy's clauses) select from them with Core and never import sqlalchemy.orm,
which with the mapping costs the CLI ~0.2 s of start-up (benchmarks/cli_latency.py --imports).
Tables no read path needs stay declared in models.py, on the same metadata, and so do the indexes
with dialect options (the trigram indexes, a partial unique index): declaring `postgresql_*` options
loads SQLAlchemy's PostgreSQL dialect (~20 ms), which a read of the embedded SQLite catalog never needs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ColumnElement,
    Computed,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    literal_column,
    text,
)

from .clock import utc as utc  # re-exported: the Core reads call `t.utc`
from .clock import utcnow
from .text_rules import SEARCH_WORD_MIN as SEARCH_WORD_MIN
from .text_rules import SEARCH_WORD_PATTERN as SEARCH_WORD_PATTERN
from .text_rules import tag_set_element as tag_set_element
from .text_rules import tags_of_set as tags_of_set

# Deterministic constraint names keep Alembic downgrades and SQLite batch mode reliable.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

# BigInteger ids that still autoincrement on SQLite (which only does so for INTEGER PRIMARY KEY).
BigId = BigInteger().with_variant(Integer(), "sqlite")


def _when(name: str, **kw: Any) -> Column[datetime]:
    return Column(name, DateTime(timezone=True), **kw)


base_models = Table(
    "base_models",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("name", String(256), nullable=False, index=True),
    Column("revision", String(128), nullable=False, default="main"),
    Column("source", Text, nullable=False),
    Column("sha256", String(64), index=True),  # of model.safetensors
    Column("architecture", String(128)),
    # The base's config.json as registered (read from its folder), and its fingerprint
    # (registry.base_evidence.config_fingerprint): how an adapter whose config names a folder on the
    # caller's machine is matched to this row without the server reading that folder. None when the
    # source was not a readable folder (a hub id, s3://).
    Column("config", JSON),
    Column("config_sha256", String(64), index=True),
    Column("created_by", String(128), nullable=False),
    _when("created_at", nullable=False, default=utcnow),
    UniqueConstraint("name", "revision"),
)

# Free-text search (`q`) matches an adapter whose lowercased full name, description or task contains
# the term (search_expressions below: the rule). `search_text` is the three joined, lowercased, in one
# column: a term found in one part is found in the whole, so it is a necessary condition that one
# trigram index (rare terms) and an index-only walk in listing order (common terms) can test without
# reading the table; the rule itself is then checked on the rows that pass (migration 0013). A raw
# newline separates the parts in both dialects (PostgreSQL shows it as E'\n').
SEARCH_TEXT_SQL = (
    "lower(namespace || '/' || name || '\n' || coalesce(description, '') || '\n' || coalesce(task, ''))"
)

# An adapter's tags as one value, each tag one element: what a tag filter tests (`tag_set @> ARRAY[..]`
# on PostgreSQL, whose GIN index intersects the filters' posting lists, so only adapters with every tag
# are read and sorted). The key's length prefixes each element ("4:tier=gold"), so no key or value can
# make two different tags one element. Kept equal to adapter_tags by the database itself (triggers of
# migration 0014, on both dialects), never written by the service. NULL when the adapter has no tags.
# A JSON array on SQLite, where listings still filter through adapter_tags.
TAG_SET_ELEMENT_SQL = "length(key) || ':' || key || '=' || value"


adapters = Table(
    "adapters",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("namespace", String(64), nullable=False),
    Column("name", String(128), nullable=False),
    Column("pem_type", String(16), nullable=False, index=True),
    Column("task", String(128), index=True),
    Column("description", Text),
    Column("base_model_id", ForeignKey("base_models.id", ondelete="RESTRICT"), nullable=False),
    Column("created_by", String(128), nullable=False),
    _when("created_at", nullable=False, default=utcnow),
    _when("updated_at", nullable=False, default=utcnow),
    # What `q` is looked up by (search_text below); stored on PostgreSQL, virtual on SQLite.
    Column("search_text", Text, Computed(text(SEARCH_TEXT_SQL))),
    Column("tag_set", ARRAY(Text).with_variant(JSON(), "sqlite")),
    # The adapter's highest version number that is active or deprecated (what a listing shows as its
    # latest), the same with archived ones, and with any status (deleted too): a listing reads them
    # from the row where it probed adapter_versions twice per candidate. Kept by the database
    # (triggers of migration 0015, both dialects), never written by the service.
    Column("latest_listed", Integer),
    Column("latest_archived", Integer),
    Column("latest_any", Integer),
    UniqueConstraint("namespace", "name"),
    Index("ix_adapters_filters", "base_model_id", "pem_type", "task"),
    # task + pem_type filters walk this index in the listing's order: the first page is its first
    # rows, however few adapters match (migration 0013).
    Index("ix_adapters_task_type_order", "task", "pem_type", "namespace", "name"),
)


def _concat(left: Any, right: Any) -> ColumnElement[str]:
    return left.op("||", return_type=Text)(right)


def search_expressions(adapter: Any = None) -> tuple[ColumnElement[str], ...]:
    """What free-text search (`q`) matches, lowercased: full name, description, task (the rule).

    list_adapters finds candidates by `search_text` (SEARCH_TEXT_SQL above, through its indexes) and
    checks these on them, so a pattern that would span two parts of `search_text` matches nothing more.
    """
    a = adapter if adapter is not None else adapters.c
    return (
        func.lower(_concat(_concat(a.namespace, literal_column("'/'")), a.name)),
        func.lower(a.description),
        func.lower(a.task),
    )


# A common search term's first page (migration 0016, PostgreSQL only; SQLite's listings filter by the
# rule itself). A term that is one run of SEARCH_WORD_PATTERN only occurs inside one such run of
# search_text (a word), so it matches exactly the adapters having a word that contains it.
# `search_words` holds each adapter's words of SEARCH_WORD_MIN characters or more, keyed (word,
# namespace, name) so each word's adapters are in listing order (its primary key INCLUDEs adapter_id:
# an index-only walk); `search_vocabulary` the words each namespace's adapters have had (append-only,
# not unique), under a trigram index: which words contain a term. Kept by the database (triggers of
# migration 0016), never written by the service.

search_words = Table(
    "search_words",
    metadata,
    Column("word", Text, primary_key=True),
    Column("namespace", String(64), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("adapter_id", ForeignKey("adapters.id", ondelete="CASCADE"), nullable=False, index=True),
)
search_vocabulary = Table(
    "search_vocabulary",
    metadata,
    Column("namespace", String(64), nullable=False),
    Column("word", Text, nullable=False),
    Index("ix_search_vocabulary_namespace_word", "namespace", "word"),
)

# A tag filter's page (migration 0017, PostgreSQL only; SQLite's tag filters probe adapter_tags): each
# tag of each adapter with the adapter's namespace and name, keyed (key, value, namespace, name), so one
# tag's adapters are in listing order (the key INCLUDEs adapter_id: an index-only walk). A filter walks
# its rarest tag's entries and probes the other tags' by the same key. Kept equal to adapter_tags joined
# with adapters by the database (triggers of migration 0017), never written by the service.
tag_entries = Table(
    "tag_entries",
    metadata,
    Column("key", String(128), primary_key=True),
    Column("value", String(512), primary_key=True),
    Column("namespace", String(64), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("adapter_id", ForeignKey("adapters.id", ondelete="CASCADE"), nullable=False),
    Index("ix_tag_entries_adapter_id_key", "adapter_id", "key"),
)

adapter_tags = Table(
    "adapter_tags",
    metadata,
    Column("adapter_id", ForeignKey("adapters.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("value", String(512), nullable=False),
    # adapter_id in the index: a tag filter is an index-only scan yielding ids in order, so two tag
    # filters merge-join without touching the table (migration 0006; 37 -> 27 ms at 1M versions).
    Index("ix_adapter_tags_key_value_adapter", "key", "value", "adapter_id"),
)

# Version lifecycle (registry.service.catalog.lifecycle). A deleted version keeps its row, so lineage
# edges and the audit trail still name its digest; its objects become garbage for `pemreg gc` after a
# grace period.
VERSION_STATUSES = ("active", "deprecated", "archived", "deleted")

adapter_versions = Table(
    "adapter_versions",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("adapter_id", ForeignKey("adapters.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("sha256", String(64), nullable=False, index=True),
    Column("rank", Integer),
    Column("alpha", Float),
    Column("use_rslora", Boolean, nullable=False, default=False),
    Column("target_modules", JSON, nullable=False, default=list),
    Column("dtype", String(16), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("num_parameters", BigInteger, nullable=False),
    Column("files", JSON, nullable=False, default=dict),  # filename -> {sha256, size}
    Column("extra", JSON, nullable=False, default=dict),  # module shapes, source config
    Column("artifact_uri", Text, nullable=False),
    Column("created_by", String(128), nullable=False),
    _when("created_at", nullable=False, default=utcnow),
    Column("status", String(16), nullable=False, default="active", server_default="active"),
    Column("status_changed_by", String(128)),
    _when("status_changed_at"),
    _when("deleted_at"),  # gc's grace clock
    UniqueConstraint("adapter_id", "version"),
    UniqueConstraint("adapter_id", "sha256"),
    CheckConstraint("status IN ('active', 'deprecated', 'archived', 'deleted')", name="status"),
    # The catalog's status filter: adapters with a version in a (rare) status, without a scan.
    Index("ix_adapter_versions_status_adapter", "status", "adapter_id"),
    # A listing's latest version per adapter (max(version) among listed statuses) from the index alone:
    # the table's row for a version is not read to learn its status (migration 0013).
    Index("ix_adapter_versions_adapter_version_status", "adapter_id", "version", "status"),
)

TRAINING_KINDS = ("metric", "param", "dataset")

# One entry of a version's training record, as given at registration (`--metric k=v`, `--param k=v`,
# `--dataset URI`), like an MLflow run's metrics, params and inputs. One row per entry so a search
# (`metric=acc>=0.8`, `param=lr:1e-4`, `dataset=URI`) is an index lookup.
training_values = Table(
    "training_values",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("version_id", ForeignKey("adapter_versions.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("kind", String(8), nullable=False),
    Column("name", String(128), nullable=False),  # metric / param name; "" for a dataset
    Column("value", String(1024), nullable=False),  # param value, dataset URI, metric as written
    Column("number", Float),  # a metric's value
    CheckConstraint("kind IN ('metric', 'param', 'dataset')", name="kind"),
    UniqueConstraint("version_id", "kind", "name", "value"),
    Index("ix_training_values_lookup", "kind", "name", "value"),
    Index("ix_training_values_metric", "kind", "name", "number"),
)

aliases = Table(
    "aliases",
    metadata,
    Column("adapter_id", ForeignKey("adapters.id", ondelete="CASCADE"), primary_key=True),
    Column("alias", String(64), primary_key=True),
    Column("version_id", ForeignKey("adapter_versions.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("updated_by", String(128), nullable=False),
    _when("updated_at", nullable=False, default=utcnow),
)

lineage_edges = Table(
    "lineage_edges",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("parent_version_id", ForeignKey("adapter_versions.id", ondelete="CASCADE"), nullable=False),
    Column("child_version_id", ForeignKey("adapter_versions.id", ondelete="CASCADE"), nullable=False),
    Column("operator", String(32), nullable=False),
    Column("weight", Float, nullable=False),
    Column("composition_id", ForeignKey("compositions.id", ondelete="SET NULL")),
    UniqueConstraint("parent_version_id", "child_version_id"),
    Index("ix_lineage_edges_child", "child_version_id", "parent_version_id"),
)

NAMESPACE_VISIBILITIES = ("internal", "private")
NAMESPACE_ROLES = ("reader", "writer", "maintainer")  # ascending

# The `ns` of `ns/name` as an object: who sees it (`internal`: every signed-in principal; `private`:
# grantees only), which aliases only maintainers move (glob patterns), and its grants.
namespaces = Table(
    "namespaces",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("visibility", String(16), nullable=False, default="internal", server_default="internal"),
    Column("protected_aliases", JSON, nullable=False, default=list),
    Column("description", Text),
    Column("created_by", String(128), nullable=False),
    _when("created_at", nullable=False, default=utcnow),
    _when("updated_at", nullable=False, default=utcnow),
    CheckConstraint("visibility IN ('internal', 'private')", name="visibility"),
)

# (namespace, subject, role): subject `key:<name>`, `user:<sub>` or `group:<name>`.
namespace_grants = Table(
    "namespace_grants",
    metadata,
    Column("namespace", ForeignKey("namespaces.name", ondelete="CASCADE"), primary_key=True),
    Column("subject", String(256), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("granted_by", String(128), nullable=False),
    _when("granted_at", nullable=False, default=utcnow),
    CheckConstraint("role IN ('reader', 'writer', 'maintainer')", name="role"),
    # The policy's lookup: the namespaces a principal's subjects are granted.
    Index("ix_namespace_grants_subject_namespace", "subject", "namespace"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("name", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column("prefix", String(16), nullable=False, index=True),  # non-secret, to find the row
    Column("key_hash", String(128), nullable=False),
    Column("created_by", String(128), nullable=False),
    _when("created_at", nullable=False, default=utcnow),
    _when("revoked_at"),
    # uq_api_keys_active_name (one active key per name) is declared in models.py: see the module doc.
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", BigId, primary_key=True),
    _when("at", nullable=False, default=utcnow, index=True),
    Column("actor", String(128), nullable=False, index=True),
    Column("action", String(32), nullable=False),
    Column("subject", String(256), nullable=False),
    Column("details", JSON, nullable=False, default=dict),
    # The namespace the event is about (None: registry-wide, e.g. keys, base models): who may read the
    # event is decided on this column, inside the listing's query (registry.service.access.policy).
    Column("namespace", String(64)),
    Index("ix_audit_events_subject_at", "subject", "at"),
    Index("ix_audit_events_namespace_id", "namespace", "id"),
)
