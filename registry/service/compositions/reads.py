"""Composition records (the read side of runs): views, lookup by run id or unique prefix, listings, and
the catalog queries the lifecycle asks (cache hits, stale recompositions).

State changes live in `runs.py`; this module never changes a row's status.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import BaseModel as Model
from sqlalchemy import or_, select

from registry.catalog import models as m
from registry.errors import InvalidInput, NotFound
from registry.service.access.identity import Access
from registry.service.access.policy import run_visible
from registry.service.catalog import paging
from registry.service.compositions.status import ACTIVE, RunStatus
from registry.service.context import Registry
from registry.views import Page, RunInput, SearchRecord

_ID_PREFIX = re.compile(r"^[0-9a-f-]{1,36}$")
MAX_LIMIT = 500


class CompositionOutput(Model):
    name: str
    version: int
    sha256: str


class CompositionView(Model):
    id: str  # the run id (UUID): the composition id everywhere
    cache_key: str | None  # sha256 of canonical spec + input digests + engine version
    name: str
    method: str
    status: RunStatus
    flow_run_id: str | None
    output: CompositionOutput | None
    metrics: dict[str, Any]
    interference: dict[str, Any]
    inputs: list[RunInput]
    spec: dict[str, Any]
    search: SearchRecord | None = None  # what a lambda search tried; the applied weights come from it
    error: str | None
    trigger: str
    cache_hit: bool
    principal: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None = None
    worker: str | None = None
    attempt: int = 1
    timings: dict[str, Any] = {}  # e.g. {"device": [holds of the `gpu` slot]}


def view_of(session: Any, row: m.Composition) -> CompositionView:
    output = None
    if row.output_version_id is not None:
        v = session.get_one(m.AdapterVersion, row.output_version_id)
        output = CompositionOutput(name=v.adapter.full_name, version=v.version, sha256=v.sha256)
    search = SearchRecord.model_validate(row.search) if row.search else None
    inputs = [
        RunInput(
            **raw, applied_weight=search.applied(raw["name"], raw["weight"]) if search else raw["weight"]
        )
        for raw in row.resolved_inputs
    ]
    return CompositionView(
        id=row.id,
        cache_key=row.cache_key,
        name=row.output_name,
        method=row.method,
        status=RunStatus(row.status),
        flow_run_id=row.flow_run_id,
        output=output,
        metrics=row.metrics,
        interference=row.interference,
        inputs=inputs,
        spec=row.spec,
        search=search,
        error=row.error,
        trigger=row.trigger,
        cache_hit=row.cache_hit,
        principal=row.principal,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        heartbeat_at=row.heartbeat_at,
        worker=row.worker,
        attempt=row.attempt or 1,
        timings=row.timings or {},
    )


def resolve_id(session: Any, id_or_prefix: str, access: Access) -> str:
    """The full run id for a full id or any unique prefix of one (as git takes short hashes), among the
    runs `access` may see (a prefix is never ambiguous because of a run the caller cannot see)."""
    text = id_or_prefix.strip().lower()
    if not _ID_PREFIX.match(text):  # cannot be a run id (hex and dashes): no such run
        raise NotFound(f"composition {id_or_prefix} not found")
    c = m.Composition
    found = list(
        session.scalars(
            select(c.id).where(c.id.startswith(text), run_visible(access)).order_by(c.id).limit(3)
        )
    )
    if text in found:
        return text
    if not found:
        raise NotFound(f"composition {id_or_prefix} not found")
    if len(found) > 1:
        more = ", ".join(found[:2]) + (", …" if len(found) > 2 else "")
        raise InvalidInput(
            f"id: prefix {id_or_prefix!r} is ambiguous (matches {more}); give more characters", field="id"
        )
    return found[0]


def get(reg: Registry, id_or_prefix: str) -> CompositionView:
    with reg.sessions() as session:
        row = session.get_one(m.Composition, resolve_id(session, id_or_prefix, reg.acting))
        return view_of(session, row)


def parse_status(status: str | None) -> RunStatus | None:
    if status is None:
        return None
    try:
        return RunStatus(status)
    except ValueError:
        allowed = ", ".join(s.value for s in RunStatus)
        raise InvalidInput(f"status: must be one of {allowed}", field="status") from None


def _position(key: list[str]) -> tuple[datetime, str]:
    return datetime.fromisoformat(key[0]), key[1]


def list_compositions(
    reg: Registry, *, status: str | None = None, limit: int = 50, page_token: str | None = None
) -> Page[CompositionView]:
    """Newest first, keyset-paginated on (created_at, id)."""
    wanted = parse_status(status)
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit: must be between 1 and {MAX_LIMIT}", field="limit")
    c = m.Composition
    query = (
        select(c).where(run_visible(reg.acting)).order_by(c.created_at.desc(), c.id.desc()).limit(limit + 1)
    )
    if wanted:
        query = query.where(c.status == wanted.value)
    if page_token:
        created, run_id = paging.decode(page_token, 2, _position)
        query = query.where(or_(c.created_at < created, (c.created_at == created) & (c.id < run_id)))
    with reg.sessions() as session:
        rows = list(session.scalars(query))
        last = rows[limit - 1] if len(rows) > limit else None
        token = paging.encode(last.created_at.isoformat(), last.id) if last else None
        return Page[CompositionView](items=[view_of(session, r) for r in rows[:limit]], next_page_token=token)


def find_cached(reg: Registry, cache_key: str, exclude: str | None = None) -> CompositionView | None:
    """The first run with this cache key that registered its output, if that output still exists.

    Failed or rejected runs never count: a run lost to a crash does not block its cache key."""
    c = m.Composition
    with reg.sessions() as session:
        query = (
            select(c)
            .join(m.AdapterVersion, m.AdapterVersion.id == c.output_version_id)
            .where(c.cache_key == cache_key, c.status == RunStatus.SUCCEEDED.value)
            .order_by(c.created_at)
            .limit(1)
        )
        if exclude:
            query = query.where(c.id != exclude)
        row = session.scalar(query)
        return view_of(session, row) if row else None


def find_outdated_outputs(reg: Registry) -> list[CompositionView]:
    """Latest succeeded run per output whose spec asks `recompose: on_parent_update` and whose inputs,
    referenced by `latest` or an alias, now resolve to another version."""
    from registry.refs import parse_ref
    from registry.service.catalog.resolve import resolve_version
    from registry.service.compositions.inputs import ResolvedInput

    stale: list[CompositionView] = []
    with reg.sessions() as session:
        rows = session.scalars(
            select(m.Composition)
            .where(m.Composition.status == RunStatus.SUCCEEDED.value)
            .order_by(m.Composition.created_at.desc())
        ).all()
        busy = set(
            session.scalars(
                select(m.Composition.output_name).where(m.Composition.status.in_([s.value for s in ACTIVE]))
            )
        )
        seen: set[str] = set()
        for row in rows:
            if row.output_name in seen or row.output_name in busy:
                continue
            seen.add(row.output_name)
            if row.spec.get("recompose") != "on_parent_update":
                continue
            for raw in row.resolved_inputs:
                item = ResolvedInput(**raw)
                if not item.follows_moving_pointer:
                    continue
                try:
                    now = resolve_version(session, parse_ref(item.ref), access=reg.acting)
                except NotFound:
                    continue
                if now.sha256 != item.sha256:
                    stale.append(view_of(session, row))
                    break
    return stale
