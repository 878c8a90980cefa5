"""Read side of the catalog: list/search adapters (keyset pagination), show one, fetch a version."""

from __future__ import annotations

from sqlalchemy import ColumnElement, ScalarSelect, exists, func, or_, select, tuple_

from registry.catalog import models as m
from registry.errors import InvalidInput
from registry.refs import Ref, validate_name
from registry.service.access.policy import readable
from registry.service.catalog import paging
from registry.service.catalog.resolve import LISTED, aliases_of, get_adapter_row, resolve_version
from registry.service.context import Registry
from registry.views import AdapterView, Page, VersionView

MAX_LIMIT = 500
FILTERABLE_STATUSES = ("active", "deprecated", "archived")  # a deleted version is not listed


def _latest_version(statuses: tuple[str, ...] = LISTED) -> ScalarSelect[int]:
    # Correlated per listed row: an index probe on (adapter_id, version) for each of the `limit` rows.
    # A GROUP BY subquery joined instead aggregates every version first (~40 ms at 100k versions).
    return (
        select(func.max(m.AdapterVersion.version))
        .where(m.AdapterVersion.adapter_id == m.Adapter.id, m.AdapterVersion.status.in_(statuses))
        .correlate(m.Adapter)
        .scalar_subquery()
    )


def _view(
    adapter: m.Adapter,
    latest: int | None,
    aliases: dict[str, int] | None = None,
    versions: list[VersionView] | None = None,
) -> AdapterView:
    return AdapterView(
        name=adapter.full_name,
        pem_type=adapter.pem_type,
        task=adapter.task,
        description=adapter.description,
        base_model=adapter.base_model.name,
        base_model_revision=adapter.base_model.revision,
        tags={t.key: t.value for t in adapter.tags},
        latest_version=latest,
        aliases=aliases or {},
        versions=versions,
        created_at=adapter.created_at,
        updated_at=adapter.updated_at,
    )


def list_adapters(
    reg: Registry,
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
    latest = _latest_version()
    if include_archived:
        latest = func.coalesce(latest, _latest_version((*LISTED, "archived")))  # type: ignore[assignment]
    stmt = (
        select(m.Adapter, latest.label("latest"))
        # Only namespaces the caller may read, inside the query: counts, pages and tokens know no others.
        .where(readable(reg.acting, m.Adapter.namespace))
        .order_by(m.Adapter.namespace, m.Adapter.name)
        .limit(limit + 1)
    )
    if not include_archived:  # hide adapters that have versions, all archived or deleted
        # A correlated max() (an index probe per row), not NOT EXISTS, which PostgreSQL may plan as a
        # hashed scan of every version.
        any_version = _latest_version(m.VERSION_STATUSES)
        stmt = stmt.where(or_(latest.is_not(None), any_version.is_(None)))
    if base_model:
        name, _, revision = base_model.partition("@")
        cond = [m.BaseModel.name == name] + ([m.BaseModel.revision == revision] if revision else [])
        stmt = stmt.where(m.Adapter.base_model_id.in_(select(m.BaseModel.id).where(*cond)))
    if pem_type:
        stmt = stmt.where(m.Adapter.pem_type == pem_type)
    if status:
        v = m.AdapterVersion
        stmt = stmt.where(exists().where(v.adapter_id == m.Adapter.id, v.status == status))
    if task:
        stmt = stmt.where(m.Adapter.task == task)
    for condition in _training_filters(metrics, params, datasets):
        stmt = stmt.where(condition)
    for key, value in (tags or {}).items():
        stmt = stmt.where(
            exists().where(
                m.AdapterTag.adapter_id == m.Adapter.id, m.AdapterTag.key == key, m.AdapterTag.value == value
            )
        )
    if query:
        # The exact expressions of the trigram indexes (PostgreSQL): one bitmap OR of three GIN scans
        # instead of a sequential scan of adapters.
        pattern = f"%{query.lower()}%"
        stmt = stmt.where(or_(*(expr.like(pattern) for expr in m.search_expressions())))
    if page_token:
        after = paging.decode(page_token, 2, tuple)
        # SQLAlchemy 2.0's stubs type tuple_'s arguments as columns; plain values are bound parameters.
        stmt = stmt.where(tuple_(m.Adapter.namespace, m.Adapter.name) > tuple_(*after))  # type: ignore[arg-type]
    with reg.sessions() as session:
        rows = session.execute(stmt).all()
    more = len(rows) > limit
    rows = rows[:limit]
    token = paging.encode(rows[-1][0].namespace, rows[-1][0].name) if more and rows else None
    return Page[AdapterView](items=[_view(a, latest) for a, latest in rows], next_page_token=token)


_OPS = {">": "__gt__", ">=": "__ge__", "<": "__lt__", "<=": "__le__", "=": "__eq__"}


def _training_filters(
    metrics: list[str] | None, params: dict[str, str] | None, datasets: list[str] | None
) -> list[ColumnElement[bool]]:
    """One EXISTS per condition over a listed version's training record (index on kind, name, ...)."""
    from registry.training import parse_metric_filter

    t, v = m.TrainingValue, m.AdapterVersion

    def has(*conds: ColumnElement[bool]) -> ColumnElement[bool]:
        inner = select(t.id).join(v, v.id == t.version_id)
        inner = inner.where(v.adapter_id == m.Adapter.id, v.status != "deleted", *conds)
        return exists(inner)

    found = []
    for text in metrics or []:
        name, op, number = parse_metric_filter(text)
        found.append(has(t.kind == "metric", t.name == name, getattr(t.number, _OPS[op])(number)))
    for name, value in (params or {}).items():
        found.append(has(t.kind == "param", t.name == name, t.value == value))
    for uri in datasets or []:
        found.append(has(t.kind == "dataset", t.name == "", t.value == uri))
    return found


def show_adapter(reg: Registry, full_name: str, *, include_archived: bool = False) -> AdapterView:
    """Versions that are active or deprecated; with `include_archived`, every version (archived and
    deleted ones too, each with its status)."""
    namespace, name = validate_name(full_name)
    with reg.sessions() as session:
        adapter = get_adapter_row(session, namespace, name, reg.acting)
        query = select(m.AdapterVersion).where(m.AdapterVersion.adapter_id == adapter.id)
        if not include_archived:
            query = query.where(m.AdapterVersion.status.in_(LISTED))
        versions = session.scalars(query.order_by(m.AdapterVersion.version)).all()
        listed = [v.version for v in versions if v.status in LISTED]
        alias_rows = session.execute(
            select(m.Alias.alias, m.AdapterVersion.version)
            .join(m.AdapterVersion, m.AdapterVersion.id == m.Alias.version_id)
            .where(m.Alias.adapter_id == adapter.id)
        ).all()
        aliases = {alias: version for alias, version in alias_rows}
        by_version: dict[int, list[str]] = {}
        for alias, version in aliases.items():
            by_version.setdefault(version, []).append(alias)
        views = [VersionView.of(v, by_version.get(v.version, [])) for v in versions]
        return _view(adapter, listed[-1] if listed else None, aliases, views)


def get_version(reg: Registry, ref: Ref | str) -> VersionView:
    with reg.sessions() as session:
        row = resolve_version(session, ref, access=reg.acting)
        return VersionView.of(row, aliases_of(session, row))
