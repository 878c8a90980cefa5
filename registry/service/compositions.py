"""Composition records: a run of a spec, its status, and the cache lookup by composition id."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel as Model
from sqlalchemy import select

from ..catalog import models as m
from ..catalog.db import transaction
from ..errors import InvalidInput, NotFound
from ..spec import CompositionSpec
from . import audit
from .compose_inputs import ResolvedInput, composition_key
from .context import Registry

STATUSES = ("pending", "running", "succeeded", "failed", "rejected")
TERMINAL = ("succeeded", "failed", "rejected")


class CompositionOutput(Model):
    name: str
    version: int
    sha256: str


class CompositionView(Model):
    id: str
    cache_key: str | None
    name: str
    method: str
    status: str
    flow_run_id: str | None
    output: CompositionOutput | None
    metrics: dict[str, Any]
    interference: dict[str, Any]
    inputs: list[dict[str, Any]]
    spec: dict[str, Any]
    error: str | None
    trigger: str
    cache_hit: bool
    principal: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def _view(session: Any, row: m.Composition) -> CompositionView:
    output = None
    if row.output_version_id is not None:
        v = session.get_one(m.AdapterVersion, row.output_version_id)
        output = CompositionOutput(name=v.adapter.full_name, version=v.version, sha256=v.sha256)
    return CompositionView(
        id=row.id,
        cache_key=row.cache_key,
        name=row.output_name,
        method=row.method,
        status=row.status,
        flow_run_id=row.flow_run_id,
        output=output,
        metrics=row.metrics,
        interference=row.interference,
        inputs=row.resolved_inputs,
        spec=row.spec,
        error=row.error,
        trigger=row.trigger,
        cache_hit=row.cache_hit,
        principal=row.principal,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


def create(
    reg: Registry, spec: CompositionSpec, inputs: list[ResolvedInput], trigger: str
) -> CompositionView:
    with transaction(reg.sessions) as session:
        row = m.Composition(
            id=str(uuid.uuid4()),
            cache_key=composition_key(spec, inputs),
            output_name=spec.name,
            method=spec.method,
            spec=spec.canonical(),
            resolved_inputs=[i.to_dict() for i in inputs],
            status="pending",
            trigger=trigger,
            principal=reg.principal,
        )
        session.add(row)
        audit.record(
            session,
            reg.principal,
            "compose_trigger",
            spec.name,
            composition_id=row.id,
            trigger=trigger,
            inputs=[i.label for i in inputs],
        )
        session.flush()
        return _view(session, row)


def update(reg: Registry, composition_id: str, **fields: Any) -> CompositionView:
    """Status transitions and results; `finished_at` is stamped on terminal states."""
    status = fields.get("status")
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown status {status}")
    with transaction(reg.sessions) as session:
        row = session.get(m.Composition, composition_id, with_for_update=True)
        if row is None:
            raise NotFound(f"composition {composition_id} not found")
        for key, value in fields.items():
            setattr(row, key, value)
        if status == "running" and row.started_at is None:
            row.started_at = m.utcnow()
        if status in TERMINAL:
            row.finished_at = m.utcnow()
        session.flush()
        return _view(session, row)


def get(reg: Registry, composition_id: str) -> CompositionView:
    with reg.sessions() as session:
        row = session.get(m.Composition, composition_id)
        if row is None:
            raise NotFound(f"composition {composition_id} not found")
        return _view(session, row)


def list_compositions(reg: Registry, *, status: str | None = None, limit: int = 50) -> list[CompositionView]:
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status: must be one of {', '.join(STATUSES)}", field="status")
    query = select(m.Composition).order_by(m.Composition.created_at.desc()).limit(limit)
    if status:
        query = query.where(m.Composition.status == status)
    with reg.sessions() as session:
        return [_view(session, r) for r in session.scalars(query)]


def find_cached(reg: Registry, cache_key: str, exclude: str) -> CompositionView | None:
    """An earlier run with this composition id that registered its output (the output still exists)."""
    with reg.sessions() as session:
        row = session.scalar(
            select(m.Composition)
            .where(
                m.Composition.cache_key == cache_key,
                m.Composition.status == "succeeded",
                m.Composition.output_version_id.is_not(None),
                m.Composition.id != exclude,
            )
            .order_by(m.Composition.created_at)
            .limit(1)
        )
        return _view(session, row) if row else None


def find_stale(reg: Registry) -> list[CompositionView]:
    """Latest succeeded run per output whose spec asks `recompose: on_parent_update` and whose inputs,
    referenced by `latest` or an alias, now resolve to another version."""
    from ..refs import parse_ref
    from .compose_inputs import ResolvedInput
    from .resolve import resolve_version

    stale: list[CompositionView] = []
    with reg.sessions() as session:
        rows = session.scalars(
            select(m.Composition)
            .where(m.Composition.status == "succeeded")
            .order_by(m.Composition.created_at.desc())
        ).all()
        busy = set(
            session.scalars(
                select(m.Composition.output_name).where(m.Composition.status.in_(("pending", "running")))
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
                    now = resolve_version(session, parse_ref(item.ref))
                except NotFound:
                    continue
                if now.sha256 != item.sha256:
                    stale.append(_view(session, row))
                    break
    return stale
