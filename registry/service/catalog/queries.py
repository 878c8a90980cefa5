"""Read side of the catalog: list/search adapters (keyset pagination), show one, fetch a version.

Each read names its statements (queries_statements: SQLAlchemy Core over registry.catalog.tables, no
ORM) and binds their values: the server answers each read in one or two round trips with no identity map
or eager loads, and the CLI's local reads run the same statements compiled, importing no SQLAlchemy
(registry.catalog.prepared). Visibility is the policy's `readable`, inside every query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from registry.catalog.clock import utc
from registry.catalog.prepared.statement import ReadStatement
from registry.catalog.text_rules import SEARCH_WORD_MIN, SEARCH_WORD_PATTERN, tag_set_element, tags_of_set
from registry.errors import InvalidInput, NotFound
from registry.refs import Ref, validate_name
from registry.service.access.standing import bound
from registry.service.catalog import paging
from registry.service.catalog.resolve import LISTED, resolve_row
from registry.service.catalog.source import CatalogSource
from registry.views import AdapterView, Page, TrainingRecord, VersionView

_STATEMENTS = "registry.service.catalog.queries_statements"
LISTING = ReadStatement(f"{_STATEMENTS}:listing")
ADAPTER = ReadStatement(f"{_STATEMENTS}:adapter")
VERSIONS = ReadStatement(f"{_STATEMENTS}:versions")
ALIASES = ReadStatement(f"{_STATEMENTS}:aliases")
TRAINING = ReadStatement(f"{_STATEMENTS}:training")

MAX_LIMIT = 500
FILTERABLE_STATUSES = ("active", "deprecated", "archived")  # a deleted version is not listed


def _adapter_view(
    row: Any,  # a row with queries_statements' _ADAPTER columns
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
        created_at=utc(row.created_at),
        updated_at=utc(row.updated_at),
    )


def _training(rows: list[Any]) -> dict[int, TrainingRecord]:
    by_version: dict[int, list[Any]] = {}
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
        values[f"tag_set_{i}"] = [tag_set_element(key, value)]  # what PostgreSQL tests: tag_set holds it
    if page_token:
        values["after_namespace"], values["after_name"] = paging.decode(page_token, 2, tuple)
    only_query = not (base_model or pem_type or status or task or metrics or params or datasets or tags)
    with reg.reading() as db:
        postgres = db.dialect == "postgresql"
        walked = None
        if tags and postgres and not query:  # PostgreSQL's reads run through SQLAlchemy (CoreReads)
            from registry.catalog.prepared.core import CoreReads
            from registry.service.catalog.tag_walk import walk_order

            assert isinstance(db, CoreReads)
            walked = walk_order(db.db, tags)
        for i, (key, value) in enumerate(walked or ()):  # the tag walked first, the others probed
            values[f"tag_key_{i}"], values[f"tag_value_{i}"] = key, value

        def listing(**search: Any) -> ListingShape:
            return ListingShape(
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
            rows = db.rows(LISTING, listing(term_words=True), word_values)
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
            rows = db.rows(LISTING, shape, values)
    more = len(rows) > limit
    rows = rows[:limit]
    token = paging.encode(rows[-1].namespace, rows[-1].name) if more and rows else None
    items = [_adapter_view(r, tags_of_set(r.tags), r.latest) for r in rows]
    return Page[AdapterView](items=items, next_page_token=token)


MAX_SEARCH_WORDS = 4
MAX_TERM_WORDS = 32  # a term in more readable words is searched by search_text's indexes


def is_search_word(term: str) -> bool:
    """Whether a lowercased term is a word of the word index (tables.search_words): a run of
    SEARCH_WORD_PATTERN at least SEARCH_WORD_MIN long. Such a term only occurs inside one word of
    search_text, so the adapters it matches are exactly those with a word containing it."""
    return len(term) >= SEARCH_WORD_MIN and re.fullmatch(SEARCH_WORD_PATTERN, term) is not None


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
class ListingShape:
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


def show_adapter(reg: CatalogSource, full_name: str, *, include_archived: bool = False) -> AdapterView:
    """Versions that are active or deprecated; with `include_archived`, every version (archived and
    deleted ones too, each with its status)."""
    namespace, name = validate_name(full_name)
    access = reg.acting
    with reg.reading() as db:
        found = db.rows(ADAPTER, access.is_admin, {"namespace": namespace, "name": name, **bound(access)})
        if not found:
            raise NotFound(f"adapter {namespace}/{name} not found")
        adapter = found[0]
        versions = db.rows(VERSIONS, include_archived, {"adapter_id": adapter.id})
        alias_rows = db.rows(ALIASES, None, {"adapter_id": adapter.id})
        trained = any(v.has_training for v in versions)
        of_adapter = {"adapter_id": adapter.id}
        training = _training(db.rows(TRAINING, (True, not include_archived), of_adapter)) if trained else {}
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
    return _adapter_view(adapter, tags_of_set(adapter.tags), latest, aliases, views)


def get_version(reg: CatalogSource, ref: Ref | str) -> VersionView:
    with reg.reading() as db:
        row = resolve_row(db, ref, access=reg.acting, extra="shown")
        trained = db.rows(TRAINING, (False, False), {"version_id": row.id}) if row.has_training else []
    training = _training(trained).get(row.id)
    return VersionView.of_columns(
        row,
        f"{row.namespace}/{row.adapter_name}",
        row.pem_type,
        row.base_model,
        aliases=sorted(row.alias_list.split(",")) if row.alias_list else [],
        training=training or TrainingRecord(),
    )
