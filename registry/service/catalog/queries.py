"""Read side of the catalog: list/search adapters (keyset pagination), show one, fetch a version.

SQLAlchemy Core over registry.catalog.tables, no ORM: the server answers each read in one or two round
trips with no identity map or eager loads, and the CLI's catalog commands import neither the ORM nor
pydantic-settings (see registry.service.catalog.source). Visibility is the policy's `readable`, inside
every query.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Row,
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
from registry.catalog.records import records
from registry.errors import InvalidInput, NotFound
from registry.refs import Ref, validate_name
from registry.service.access.policy import bound, readable, readable_bound
from registry.service.catalog import paging
from registry.service.catalog.resolve import LISTED, VERSION_COLUMNS, resolve_row
from registry.service.catalog.source import CatalogSource
from registry.service.catalog.tag_walk import walk_order
from registry.views import AdapterView, Page, TrainingRecord, VersionView

MAX_LIMIT = 500
FILTERABLE_STATUSES = ("active", "deprecated", "archived")  # a deleted version is not listed

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
_SEARCHED = t.adapters.alias("searched")  # a search's candidates, in listing order (_listing_statement)
# A version's aliases, comma-joined (an alias has no comma: registry.refs.ALIAS_PATTERN), and whether it
# has a training record (read only then): the version and both in the version's one round trip.
_ALIASES = (
    select(func.aggregate_strings(_al.alias, ","))
    .where(_al.version_id == _v.id)
    .correlate(t.adapter_versions)  # not aliases: `@alias` refs join that table in the outer query
    .scalar_subquery()
    .label("alias_list")
)
_HAS_TRAINING = exists().where(_tv.version_id == _v.id).label("has_training")


# Each adapter's tags from its own row (adapters.tag_set, migration 0014): a page is one statement with
# no per-row subquery, and no JSON for the driver to parse.
_TAGS = _a.tag_set.label("tags")


# An adapter's latest listed version, and with archived ones when asked: columns the database keeps
# (migration 0015), where a listing probed adapter_versions per candidate row before sorting.
_LATEST = _a.latest_listed
_LATEST_OR_ARCHIVED = func.coalesce(_a.latest_listed, _a.latest_archived)
_ANY_VERSION = _a.latest_any


def _adapter_view(
    row: Any,  # a Row or a records() tuple with the _ADAPTER columns
    tags: dict[str, str],
    latest: int | None,
    aliases: dict[str, int] | None = None,
    versions: list[VersionView] | None = None,
) -> AdapterView:
    return AdapterView(
        name=f"{row.namespace}/{row.name}",
        pem_type=row.pem_type,
        task=row.task,
        description=row.description,
        base_model=row.base_model,
        base_model_revision=row.base_model_revision,
        tags=tags,
        latest_version=latest,
        aliases=aliases or {},
        versions=versions,
        created_at=t.utc(row.created_at),
        updated_at=t.utc(row.updated_at),
    )


def _training(db: Any, version_ids: Sequence[int]) -> dict[int, TrainingRecord]:
    rows = db.execute(select(t.training_values).where(_tv.version_id.in_(version_ids)).order_by(_tv.id)).all()
    by_version: dict[int, list[Row[Any]]] = {}
    for row in rows:
        by_version.setdefault(row.version_id, []).append(row)
    return {vid: TrainingRecord.of_rows(found) for vid, found in by_version.items()}


def list_adapters(
    reg: CatalogSource,
    *,
    base_model: str | None = None,
    pem_type: str | None = None,
    task: str | None = None,
    tags: dict[str, str] | None = None,
    query: str | None = None,
    limit: int = 50,
    page_token: str | None = None,
    include_archived: bool = False,
    status: str | None = None,
    metrics: list[str] | None = None,
    params: dict[str, str] | None = None,
    datasets: list[str] | None = None,
) -> Page[AdapterView]:
    """`latest_version` skips archived versions; an adapter whose versions are all archived or deleted
    is listed only with `include_archived` (then `latest_version` is its highest archived one).
    `status` (active | deprecated | archived) keeps adapters with at least one version in that status;
    `archived` implies `include_archived`. `metrics` (`acc>=0.8`), `params` ({name: value}) and
    `datasets` (URIs) keep adapters with a version whose training record matches each of them."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit: must be between 1 and {MAX_LIMIT}", field="limit")
    if status is not None and status not in FILTERABLE_STATUSES:
        allowed = ", ".join(FILTERABLE_STATUSES)
        raise InvalidInput(f"status: must be one of {allowed}", field="status")
    include_archived = include_archived or status == "archived"
    access = reg.acting
    # The filters' values, bound at execution; the statement itself is built once per shape.
    values: dict[str, Any] = {"limit": limit + 1, **bound(access)}
    if base_model:
        values["base_name"], _, revision = base_model.partition("@")
        if revision:
            values["base_revision"] = revision
    if pem_type:
        values["pem_type"] = pem_type
    if status:
        values["status"] = status
    if task:
        values["task"] = task
    metric_ops = []
    if metrics:
        from registry.training import parse_metric_filter
    for i, text in enumerate(metrics or []):
        name, op, number = parse_metric_filter(text)
        metric_ops.append(op)
        values[f"metric_name_{i}"], values[f"metric_value_{i}"] = name, number
    for i, (name, value) in enumerate((params or {}).items()):
        values[f"param_name_{i}"], values[f"param_value_{i}"] = name, value
    for i, uri in enumerate(datasets or []):
        values[f"dataset_{i}"] = uri
    for i, (key, value) in enumerate((tags or {}).items()):
        values[f"tag_key_{i}"], values[f"tag_value_{i}"] = key, value
        values[f"tag_set_{i}"] = [t.tag_set_element(key, value)]  # what PostgreSQL tests: tag_set holds it
    if page_token:
        values["after_namespace"], values["after_name"] = paging.decode(page_token, 2, tuple)
    only_query = not (base_model or pem_type or status or task or metrics or params or datasets or tags)
    with reg.connect() as db:
        postgres = db.dialect.name == "postgresql"
        walked = walk_order(db, tags) if tags and postgres and not query else None
        for i, (key, value) in enumerate(walked or ()):  # the tag walked first, the others probed
            values[f"tag_key_{i}"], values[f"tag_value_{i}"] = key, value

        def listing(**search: Any) -> _Listing:
            return _Listing(
                postgres=postgres,
                admin=access.is_admin,
                include_archived=include_archived,
                base_model="base_name" in values,
                base_revision="base_revision" in values,
                pem_type=bool(pem_type),
                status=bool(status),
                task=bool(task),
                metric_ops=tuple(metric_ops),
                params=len(params or {}),
                datasets=len(datasets or []),
                tags=len(tags or {}),
                after=bool(page_token),
                tag_walk=walked is not None,
                **search,
            )

        rows = []
        if query and postgres and only_query and is_search_word(query.lower()):
            # The word index (tables.search_words). It returns nothing when more than MAX_TERM_WORDS
            # readable words contain the term, and then search_text's indexes answer below, as they
            # do a term no adapter has (rare, and cheap to confirm there).
            word_values = {**values, "word_pattern": f"%{query.lower()}%"}
            rows = records(db.execute(_listing_statement(listing(term_words=True)), word_values))
        if not rows:
            words = search_words(query) if query and postgres else ()
            shape = listing(
                query=bool(query),
                # Only a term with a wildcard or a newline can match search_text across two of its parts.
                query_spans=any(c in (query or "") for c in "%_\n"),
                query_words=len(words),
            )
            if query:
                values["pattern"] = _like_pattern(query, shape.postgres)
            for i, word in enumerate(words):
                values[f"word_{i}"] = f"%{word}%"
            rows = records(db.execute(_listing_statement(shape), values))
    more = len(rows) > limit
    rows = rows[:limit]
    token = paging.encode(rows[-1].namespace, rows[-1].name) if more and rows else None
    items = [_adapter_view(r, t.tags_of_set(r.tags), r.latest) for r in rows]
    return Page[AdapterView](items=items, next_page_token=token)


MAX_SEARCH_WORDS = 4
MAX_TERM_WORDS = 32  # a term in more readable words is searched by search_text's indexes


def is_search_word(term: str) -> bool:
    """Whether a lowercased term is a word of the word index (tables.search_words): a run of
    SEARCH_WORD_PATTERN at least SEARCH_WORD_MIN long. Such a term only occurs inside one word of
    search_text, so the adapters it matches are exactly those with a word containing it."""
    return len(term) >= t.SEARCH_WORD_MIN and re.fullmatch(t.SEARCH_WORD_PATTERN, term) is not None


def search_words(query: str) -> tuple[str, ...]:
    """The words of a term the trigram index is asked for, one condition each; () when the term is one.

    pg_trgm reads a LIKE pattern as one GIN key of all its trigrams, and GIN advances every trigram of a
    key to each candidate of the key's rarest one: `number 4242` walked the whole posting list of each
    of `number`'s trigrams (in every adapter's description), 11-16 ms at 100k adapters. Separate keys
    are intersected by skipping, each key to the others' candidates (1.5 ms). A word is a run of letters
    and digits of the lowercased term, at least a trigram long (a shorter one has no trigram, and a key
    without any makes GIN read the whole index); each is a substring every match contains, so the words
    only narrow the candidates the term itself is then checked on. The longest few, so the statement
    has a bounded number of shapes.
    """
    found = [w for w in re.split(r"[\W_]+", query.lower()) if len(w) >= 3]
    if found == [query.lower()]:
        return ()  # the term is its word: one condition, as before
    unique = sorted(set(found), key=lambda w: (-len(w), w))[:MAX_SEARCH_WORDS]
    return tuple(sorted(unique))


def _like_pattern(query: str, postgres: bool) -> str:
    r"""`q` as a LIKE pattern: contains the term, lowercased; its `%` and `_` are wildcards, a backslash
    is a character, as SQLite's LIKE (no escape character) reads it. PostgreSQL's LIKE reads `\` as an
    escape (`100\` would mean "ends with 100%"), so it gets the backslash doubled."""
    term = query.lower()
    return f"%{term.replace(chr(92), chr(92) * 2) if postgres else term}%"


@dataclass(frozen=True)
class _Listing:
    """Which filters a listing has (not their values): one statement per shape, built once. Building a
    listing's statement and its cache key each request cost ~0.5 ms of server CPU."""

    postgres: bool  # tag filters test adapters.tag_set through its GIN index there
    admin: bool
    include_archived: bool
    base_model: bool
    base_revision: bool
    pem_type: bool
    status: bool
    task: bool
    metric_ops: tuple[str, ...]
    params: int
    datasets: int
    tags: int
    after: bool
    query: bool = False
    query_spans: bool = False
    query_words: int = 0  # PostgreSQL: the term's words, each a condition the trigram index serves
    term_words: bool = False  # PostgreSQL: the term is one word; the words containing it are walked
    tag_walk: bool = False  # PostgreSQL: the first tag's entries are walked in listing order (tag_walk.py)


@lru_cache(maxsize=256)
def _listing_statement(shape: _Listing) -> Select[Any]:
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


def _training_filters(shape: _Listing) -> list[ColumnElement[bool]]:
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


def show_adapter(reg: CatalogSource, full_name: str, *, include_archived: bool = False) -> AdapterView:
    """Versions that are active or deprecated; with `include_archived`, every version (archived and
    deleted ones too, each with its status)."""
    namespace, name = validate_name(full_name)
    with reg.connect() as db:
        adapter = db.execute(
            select(*_ADAPTER, _TAGS)
            .select_from(_WITH_BASE)
            .where(_a.namespace == namespace, _a.name == name, readable(reg.acting, _a.namespace))
        ).first()
        if adapter is None:
            raise NotFound(f"adapter {namespace}/{name} not found")
        query = select(*VERSION_COLUMNS, _HAS_TRAINING).where(_v.adapter_id == adapter.id)
        if not include_archived:
            query = query.where(_v.status.in_(LISTED))
        versions = records(db.execute(query.order_by(_v.version)))
        alias_rows = db.execute(
            select(_al.alias, _v.version)
            .join(t.adapter_versions, _v.id == _al.version_id)
            .where(_al.adapter_id == adapter.id)
        ).all()
        trained = [v.id for v in versions if v.has_training]
        training = _training(db, trained) if trained else {}
    aliases = {alias: version for alias, version in alias_rows}
    by_version: dict[int, list[str]] = {}
    for alias, version in aliases.items():
        by_version.setdefault(version, []).append(alias)
    full = f"{adapter.namespace}/{adapter.name}"
    views = [
        VersionView.of_columns(
            v,
            full,
            adapter.pem_type,
            adapter.base_model,
            aliases=sorted(by_version.get(v.version, [])),
            training=training.get(v.id, TrainingRecord()),
        )
        for v in versions
    ]
    listed = [v.version for v in versions if v.status in LISTED]
    latest = listed[-1] if listed else None
    return _adapter_view(adapter, t.tags_of_set(adapter.tags), latest, aliases, views)


def get_version(reg: CatalogSource, ref: Ref | str) -> VersionView:
    with reg.connect() as db:
        row = resolve_row(db, ref, access=reg.acting, extra=(_ALIASES, _HAS_TRAINING))
        training = _training(db, [row.id]).get(row.id) if row.has_training else None
    return VersionView.of_columns(
        row,
        f"{row.namespace}/{row.adapter_name}",
        row.pem_type,
        row.base_model,
        aliases=sorted(row.alias_list.split(",")) if row.alias_list else [],
        training=training or TrainingRecord(),
    )
