"""The statements of the adapter reads (registry.service.catalog.queries): Core over
registry.catalog.tables, built on the server and compiled for the CLI's local reads
(registry.catalog.prepared). Every value is bound at execution, by the names queries binds."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    Text,
    bindparam,
    case,
    exists,
    func,
    literal,
    or_,
    select,
    true,
    tuple_,
)

from registry.catalog import tables as t
from registry.catalog.db import PLAN_PER_VALUES
from registry.service.access.policy import readable_bound
from registry.service.catalog.queries import MAX_TERM_WORDS, ListingShape
from registry.service.catalog.resolve import LISTED
from registry.service.catalog.resolve_statements import HAS_TRAINING, VERSION_COLUMNS

_a, _v, _bm, _tag, _al, _tv, _sw, _vocab, _te = (
    t.adapters.c,
    t.adapter_versions.c,
    t.base_models.c,
    t.adapter_tags.c,
    t.aliases.c,
    t.training_values.c,
    t.search_words.c,
    t.search_vocabulary.c,
    t.tag_entries.c,
)
_ADAPTER = (
    _a.id,
    _a.namespace,
    _a.name,
    _a.pem_type,
    _a.task,
    _a.description,
    _a.created_at,
    _a.updated_at,
    _bm.name.label("base_model"),
    _bm.revision.label("base_model_revision"),
)
_WITH_BASE = t.adapters.join(t.base_models, _bm.id == _a.base_model_id)
_SEARCHED = t.adapters.alias("searched")  # a search's candidates, in listing order (`listing`)
# Each adapter's tags from its own row (adapters.tag_set, migration 0014): a page is one statement with
# no per-row subquery, and no JSON for the driver to parse.
_TAGS = _a.tag_set.label("tags")


# An adapter's latest listed version, and with archived ones when asked: columns the database keeps
# (migration 0015), where a listing probed adapter_versions per candidate row before sorting.
_LATEST = _a.latest_listed
_LATEST_OR_ARCHIVED = func.coalesce(_a.latest_listed, _a.latest_archived)
_ANY_VERSION = _a.latest_any


def listing(shape: ListingShape) -> Select[Any]:
    """The listing of `shape`, its values named as list_adapters binds them."""
    latest = _LATEST_OR_ARCHIVED if shape.include_archived else _LATEST
    # A search orders and pages by a second reference to adapters (_SEARCHED), which PostgreSQL reads
    # index-only (namespace, name, id, search_text: models.py); the row itself is read by id only for
    # candidates, so a common term costs a walk of the index, not of the table. A one-word term orders
    # and pages by search_words instead (its key is (word, namespace, name)), a walked tag filter by
    # tag_entries (key, value, namespace, name).
    order: Any = _SEARCHED.c if shape.query else _sw if shape.term_words else _te if shape.tag_walk else _a
    source = _WITH_BASE
    if shape.query:
        source = _WITH_BASE.join(_SEARCHED, _SEARCHED.c.id == _a.id)
    elif shape.term_words:
        source = _WITH_BASE.join(t.search_words, _sw.adapter_id == _a.id)
    elif shape.tag_walk:
        source = _WITH_BASE.join(t.tag_entries, _te.adapter_id == _a.id)
    stmt = (
        select(*_ADAPTER, _TAGS, latest.label("latest"))
        .select_from(source)
        # Only namespaces the caller may read, inside the query: counts, pages and tokens know no others.
        .where(readable_bound(shape.admin, order.namespace))
        .order_by(order.namespace, order.name)
        .limit(bindparam("limit", type_=Integer))
    )
    if not shape.include_archived:  # hide adapters that have versions, all archived or deleted
        stmt = stmt.where(or_(latest.is_not(None), _ANY_VERSION.is_(None)))
    if shape.base_model:
        cond = [_bm.name == bindparam("base_name")]
        if shape.base_revision:
            cond.append(_bm.revision == bindparam("base_revision"))
        stmt = stmt.where(_a.base_model_id.in_(select(_bm.id).where(*cond)))
    if shape.pem_type:
        stmt = stmt.where(_a.pem_type == bindparam("pem_type"))
    if shape.status:
        stmt = stmt.where(exists().where(_v.adapter_id == _a.id, _v.status == bindparam("status")))
    if shape.task:
        stmt = stmt.where(_a.task == bindparam("task"))
    for condition in _training_filters(shape):
        stmt = stmt.where(condition)
    if shape.tag_walk:
        # The first tag's entries in listing order (an index-only walk that stops at the page's last
        # match), each probed for the other tags by the same key. The probes stay per-row lookups
        # (OFFSET 0: not flattened into a join), which the planner would otherwise cost as if matches
        # were spread evenly, and merge-join the walk with a common tag's whole list.
        key, value = bindparam("tag_key_0", type_=String), bindparam("tag_value_0", type_=String)
        stmt = stmt.where(_te.key == key, _te.value == value)
        for i in range(1, shape.tags):
            probe = t.tag_entries.alias(f"tag_probe_{i}").c
            key, value = bindparam(f"tag_key_{i}", type_=String), bindparam(f"tag_value_{i}", type_=String)
            same = (probe.namespace == _te.namespace, probe.name == _te.name)
            has_tag = select(literal(1)).where(probe.key == key, probe.value == value, *same)
            stmt = stmt.where(exists(has_tag.offset(0)))
    elif shape.tags and shape.postgres:
        # Every tag is common (tag_walk.py): the GIN index on tag_set intersects the tags' posting
        # lists (migration 0014), so only the adapters with all of them are read and sorted. One
        # condition per tag, not one array of all: each condition is a GIN key, and GIN intersects
        # keys by skipping each to the others' candidates, where it walks every entry of one key to
        # each candidate of the key's rarest (`tag=tier:gold&tag=team:t7` at 100k adapters: 1.9 ms as
        # one array, 0.55 ms as two keys). Planned for its tags each time, like a search: a tag on a
        # third of the adapters is best read walking the listing's order, one on 2% through the index;
        # one generic plan for both took 55 ms for the first at 1M versions.
        contains = _a.tag_set.op("@>", is_comparison=True)
        for i in range(shape.tags):
            stmt = stmt.where(contains(bindparam(f"tag_set_{i}", type_=_a.tag_set.type)))
        stmt = stmt.execution_options(**{PLAN_PER_VALUES: True})
    for i in range(0 if shape.postgres else shape.tags):
        key, value = bindparam(f"tag_key_{i}", type_=String), bindparam(f"tag_value_{i}", type_=String)
        stmt = stmt.where(exists().where(_tag.adapter_id == _a.id, _tag.key == key, _tag.value == value))
    if shape.query:
        # By search_text: its trigram index for a rare term, an index-only walk in order for a common
        # one (the planner's choice). A plain term found there is found in one of its parts, which is
        # the rule (tables.search_expressions); a term that could span two parts is checked by the rule
        # too. Only then: the planner would count both conditions' selectivity, expect a few rows,
        # and sort every match where the walk stops at the page's last.
        pattern = bindparam("pattern", type_=Text)
        matches = _SEARCHED.c.search_text.like(pattern)
        if shape.query_words:
            # The words (search_words) are what the index is asked for, and what the planner estimates
            # the matches by. The term is checked on the candidates as a NULL test of a CASE: no index
            # serves it, and the planner counts it as nearly always true (0.995 for an expression
            # without statistics). As a plain LIKE it would be a GIN key again, and the planner would
            # multiply its selectivity with its own words', expect too few matches and sort them all
            # where the walk stops at the page's last (51 ms for `clinical adapter` at 100k adapters,
            # where the walk takes 2.5 ms).
            for i in range(shape.query_words):
                stmt = stmt.where(_SEARCHED.c.search_text.like(bindparam(f"word_{i}", type_=Text)))
            matches = case((matches, true())).is_not(None)
        stmt = stmt.where(matches).execution_options(**{PLAN_PER_VALUES: True})
        if shape.query_spans:
            stmt = stmt.where(or_(*(expr.like(pattern) for expr in t.search_expressions())))
    if shape.after:
        after_namespace = bindparam("after_namespace", type_=String)
        after = tuple_(after_namespace, bindparam("after_name", type_=String))
        # The namespace bound is implied by the row comparison, said again on its own: PostgreSQL can
        # then bound its index scans by it (a tag filter's deep page joined each readable namespace to
        # a scan of the (namespace, name) index under the row comparison: 40-60 ms for one team tag).
        stmt = stmt.where(tuple_(order.namespace, order.name) > after, order.namespace >= after_namespace)
    if shape.term_words:
        # The words of readable namespaces that contain the term (search_vocabulary's trigram index).
        # Kept per namespace, so neither the page nor the plan depends on words only namespaces the
        # caller cannot read have.
        vocabulary = (
            select(_vocab.word)
            .where(
                _vocab.word.like(bindparam("word_pattern", type_=Text)),
                readable_bound(shape.admin, _vocab.namespace),
            )
            .distinct()
            .limit(MAX_TERM_WORDS + 1)
            .cte("term_word")
        )
        # Per word, its first adapters in listing order (an index-only walk of search_words' key that
        # stops at the page's last), every filter applied; the page is the first distinct ones of
        # those: an adapter on the page is within its own word's first `limit`. Past MAX_TERM_WORDS
        # words, nothing (a one-time check): walks would cost more than search_text's indexes.
        found = stmt.where(_sw.word == vocabulary.c.word).lateral("found")
        few = select(func.count()).select_from(vocabulary).scalar_subquery() <= MAX_TERM_WORDS
        stmt = (
            select(*found.c)
            .select_from(vocabulary)
            .join(found, true())
            .where(few)
            .distinct()
            .order_by(found.c.namespace, found.c.name)
            .limit(bindparam("limit", type_=Integer))
        )
    return stmt


_OPS = {">": "__gt__", ">=": "__ge__", "<": "__lt__", "<=": "__le__", "=": "__eq__"}


def _training_filters(shape: ListingShape) -> list[ColumnElement[bool]]:
    """One EXISTS per condition over a listed version's training record (index on kind, name, ...)."""

    def has(*conds: ColumnElement[bool]) -> ColumnElement[bool]:
        inner = select(_tv.id).join(t.adapter_versions, _v.id == _tv.version_id)
        inner = inner.where(_v.adapter_id == _a.id, _v.status != "deleted", *conds)
        return exists(inner)

    found = []
    for i, op in enumerate(shape.metric_ops):
        number = getattr(_tv.number, _OPS[op])(bindparam(f"metric_value_{i}"))
        found.append(has(_tv.kind == "metric", _tv.name == bindparam(f"metric_name_{i}"), number))
    for i in range(shape.params):
        name, value = bindparam(f"param_name_{i}", type_=String), bindparam(f"param_value_{i}", type_=String)
        found.append(has(_tv.kind == "param", _tv.name == name, _tv.value == value))
    for i in range(shape.datasets):
        found.append(has(_tv.kind == "dataset", _tv.name == "", _tv.value == bindparam(f"dataset_{i}")))
    return found


def adapter(admin: bool) -> Select[Any]:
    """One adapter by `namespace` and `name`, if the reader may read it."""
    return (
        select(*_ADAPTER, _TAGS)
        .select_from(_WITH_BASE)
        .where(
            _a.namespace == bindparam("namespace", type_=String),
            _a.name == bindparam("name", type_=String),
            readable_bound(admin, _a.namespace),
        )
    )


def versions(include_archived: bool) -> Select[Any]:
    """The versions of adapter `adapter_id` in order: listed ones, or with `include_archived` every one."""
    adapter_id = bindparam("adapter_id", type_=Integer)
    query = select(*VERSION_COLUMNS, HAS_TRAINING).where(_v.adapter_id == adapter_id)
    if not include_archived:
        query = query.where(_v.status.in_(LISTED))
    return query.order_by(_v.version)


def aliases(_: None) -> Select[Any]:
    """The aliases of adapter `adapter_id`, each with its version's number."""
    return (
        select(_al.alias, _v.version)
        .join(t.adapter_versions, _v.id == _al.version_id)
        .where(_al.adapter_id == bindparam("adapter_id", type_=Integer))
    )


def training(shape: tuple[bool, bool]) -> Select[Any]:
    """The training records of version `version_id`, or of every version of adapter `adapter_id` (with
    `listed`, of its listed versions: those show_adapter shows). `shape` is (of_adapter, listed)."""
    of_adapter, listed = shape
    query = select(t.training_values).order_by(_tv.id)
    if not of_adapter:
        return query.where(_tv.version_id == bindparam("version_id", type_=Integer))
    query = query.join(t.adapter_versions, _v.id == _tv.version_id)
    query = query.where(_v.adapter_id == bindparam("adapter_id", type_=Integer))
    return query.where(_v.status.in_(LISTED)) if listed else query
