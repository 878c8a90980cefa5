"""Base models: the model every adapter belongs to (name + revision + where to load it from)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.errors import Conflict, InvalidInput
from registry.service.catalog import audit
from registry.service.context import Registry
from registry.service.registration.base_identity import (
    MAX_REVISION,
    check_base_label,
    local_dir,
    normalise_source,
    not_registered,
)
from registry.sources import SourceAccess
from registry.views import BaseModelView

DEFAULT_REVISION = "main"
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
SHA256_RE = re.compile(r"[0-9a-f]{64}")


def _check_fields(name: str, revision: str, source: str, sha256: str | None) -> None:
    check_base_label(name, "name")
    if "@" in name:
        raise InvalidInput("name: '@' separates the revision; pass --revision instead", field="name")
    if not revision.strip() or len(revision) > MAX_REVISION or CONTROL_RE.search(revision):
        raise InvalidInput(
            f"revision: 1 to {MAX_REVISION} characters, no control characters", field="revision"
        )
    if not source.strip() or CONTROL_RE.search(source) or len(source) > 4096:
        raise InvalidInput("source: 1 to 4096 characters, no control characters", field="source")
    if sha256 is not None and not SHA256_RE.fullmatch(sha256):
        raise InvalidInput("sha256: 64 lowercase hex digits", field="sha256")


def _architecture_of(folder: Path) -> str | None:
    config = folder / "config.json"
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
    local: bool = True,
) -> tuple[BaseModelView, bool]:
    """Register a base model. Same name+revision+source again is a no-op; another source conflicts,
    and so does a source already registered under another name (one base, one identity).
    `local`: the caller may have its local path resolved and config.json read (the CLI; not REST).
    The source passes the caller's source policy first (registry/sources.py): a REST caller names only
    the store, PEMREG_SOURCE_ROOTS, or a hub id where PEMREG_ALLOW_HUB_SOURCES allows it."""
    _check_fields(name, revision, source, sha256)
    SourceAccess.for_principal(reg.settings, reg.actor.kind).check_model_source(source.strip(), "source")
    source = normalise_source(source, local=local)
    with transaction(reg.sessions) as session:
        row = session.scalar(
            select(m.BaseModel).where(m.BaseModel.name == name, m.BaseModel.revision == revision)
        )
        if row is not None:
            if normalise_source(row.source, local=local) != source:
                raise Conflict(
                    f"base model {name}@{revision} is registered with source {row.source!r}, not {source!r}"
                )
            return BaseModelView.of(row), False
        for other in session.scalars(select(m.BaseModel).where(m.BaseModel.revision == revision)):
            if normalise_source(other.source, local=local) == source:
                raise Conflict(
                    f"source: {source!r} is already registered as base model {other.name}@{other.revision}"
                )
        folder = local_dir(source) if local else None
        row = m.BaseModel(
            name=name,
            revision=revision,
            source=source,
            sha256=sha256,
            architecture=architecture or (_architecture_of(folder) if folder else None),
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
        raise not_registered(session, spec, "base_model")
    return row
