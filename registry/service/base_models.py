"""Base models: the model every adapter belongs to (name + revision + where to load it from)."""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..catalog import models as m
from ..catalog.db import transaction
from ..errors import Conflict, InvalidInput, NotFound
from ..paths import user_path
from . import audit
from .context import Registry
from .views import BaseModelView

DEFAULT_REVISION = "main"


def _architecture_of(source: str) -> str | None:
    config = user_path(source) / "config.json"
    if not config.is_file():
        return None
    try:
        archs = json.loads(config.read_text()).get("architectures") or []
    except (OSError, ValueError):
        return None
    return archs[0] if archs else None


def add_base_model(
    reg: Registry,
    name: str,
    *,
    source: str,
    revision: str = DEFAULT_REVISION,
    sha256: str | None = None,
    architecture: str | None = None,
) -> tuple[BaseModelView, bool]:
    """Register a base model. Same name+revision+source again is a no-op; another source conflicts."""
    if not name.strip():
        raise InvalidInput("name: must not be empty", field="name")
    if not source.strip():
        raise InvalidInput("source: must not be empty", field="source")
    if len(name) > 120 or len(revision) > 120:
        raise InvalidInput("name: name and revision up to 120 characters each", field="name")
    with transaction(reg.sessions) as session:
        row = session.scalar(
            select(m.BaseModel).where(m.BaseModel.name == name, m.BaseModel.revision == revision)
        )
        if row is not None:
            if row.source != source:
                raise Conflict(
                    f"base model {name}@{revision} is registered with source {row.source!r}, not {source!r}"
                )
            return BaseModelView.of(row), False
        row = m.BaseModel(
            name=name,
            revision=revision,
            source=source,
            sha256=sha256,
            architecture=architecture or _architecture_of(source),
            created_by=reg.principal,
        )
        session.add(row)
        session.flush()
        audit.record(session, reg.principal, "register_base_model", f"base:{name}@{revision}", source=source)
        return BaseModelView.of(row), True


def list_base_models(reg: Registry) -> list[BaseModelView]:
    with reg.sessions() as session:
        rows = session.scalars(select(m.BaseModel).order_by(m.BaseModel.name, m.BaseModel.revision))
        return [BaseModelView.of(r) for r in rows]


def find_base_model(session: Session, name: str, revision: str | None = None) -> m.BaseModel | None:
    query = select(m.BaseModel).where(m.BaseModel.name == name)
    if revision:
        query = query.where(m.BaseModel.revision == revision)
    rows = session.scalars(query.order_by(m.BaseModel.id)).all()
    if len(rows) > 1:
        revisions = ", ".join(r.revision for r in rows)
        raise InvalidInput(
            f"base_model: {name!r} has several revisions ({revisions}); name one as NAME@REVISION",
            field="base_model",
        )
    return rows[0] if rows else None


def require_base_model(session: Session, spec: str) -> m.BaseModel:
    """`spec` is NAME or NAME@REVISION."""
    name, _, revision = spec.partition("@")
    row = find_base_model(session, name, revision or None)
    if row is None:
        raise NotFound(f"base model {spec!r} is not registered (pemreg base-models add {name} --source ...)")
    return row
