"""Base models: the model every adapter belongs to (name + revision + where to load it from)."""

from __future__ import annotations

import json
import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.base_evidence import BaseEvidence, config_fingerprint, folder_evidence
from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.errors import Conflict, InvalidInput
from registry.refs import SHA256_RE
from registry.service.catalog import audit
from registry.service.context import Registry
from registry.service.registration.base_identity import (
    MAX_REVISION,
    by_name,
    check_base_label,
    local_dir,
    normalise_source,
    require_base_row,
)
from registry.sources import SourceAccess
from registry.views import BaseModelView

DEFAULT_REVISION = "main"
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


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


MAX_CONFIG_CHARS = 256 * 1024


def _identity(
    source: str, sha256: str | None, evidence: BaseEvidence | None, local: bool
) -> tuple[str | None, BaseEvidence | None]:
    """(weights digest, evidence) to record: the caller's evidence, else (local callers) the source
    folder's own; a given `sha256` must agree with the folder's."""
    if evidence is None and local:
        folder = local_dir(source)
        evidence = folder_evidence(folder) if folder is not None else None
    found = evidence.weights_sha256 if evidence is not None else None
    if sha256 and found and sha256 != found:
        raise InvalidInput(
            f"sha256: {sha256[:12]}… is not the digest of the folder's model.safetensors ({found[:12]}…)",
            field="sha256",
        )
    config = evidence.config if evidence is not None else None
    if config is not None and len(json.dumps(config)) > MAX_CONFIG_CHARS:
        raise InvalidInput(f"config: larger than {MAX_CONFIG_CHARS} characters", field="config")
    return sha256 or found, evidence


def add_base_model(
    reg: Registry,
    name: str,
    *,
    source: str,
    revision: str = DEFAULT_REVISION,
    sha256: str | None = None,
    architecture: str | None = None,
    local: bool = True,
    evidence: BaseEvidence | None = None,
) -> tuple[BaseModelView, bool]:
    """Register a base model. Same name+revision+source again is a no-op; another source conflicts,
    and so does a source or weights digest already registered under another name (one base, one
    identity). The base's config.json (and weights digest) are recorded from `evidence` (what the
    caller read in a folder holding the base), or, for `local` callers (the CLI; not REST), from the
    source folder itself: that is what adapters whose config names a folder are matched by.
    `local`: the caller may have its local path resolved and read. The source passes the caller's
    source policy first (registry/sources.py): a REST caller names only the store,
    PEMREG_SOURCE_ROOTS, or a hub id where PEMREG_ALLOW_HUB_SOURCES allows it."""
    _check_fields(name, revision, source, sha256)
    SourceAccess.for_principal(reg.settings, reg.acting.kind).check_model_source(source.strip(), "source")
    source = normalise_source(source, local=local)
    sha256, evidence = _identity(source, sha256, evidence, local)
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
        if sha256:
            twin = session.scalar(select(m.BaseModel).where(m.BaseModel.sha256 == sha256).limit(1))
            if twin is not None:
                raise Conflict(
                    f"sha256: these weights are already registered as base model {twin.name}@{twin.revision}"
                )
        config = evidence.config if evidence is not None else None
        row = m.BaseModel(
            name=name,
            revision=revision,
            source=source,
            sha256=sha256,
            architecture=architecture or (evidence.architecture if evidence is not None else None),
            config=config,
            config_sha256=config_fingerprint(config) if config is not None else None,
            created_by=reg.principal,
        )
        session.add(row)
        session.flush()
        audit.record(session, reg.principal, "register_base_model", f"base:{name}@{revision}", source=source)
        return BaseModelView.of(row), True


def find_base_model(session: Session, name: str, revision: str | None = None) -> m.BaseModel | None:
    """The ORM row of `name` (at `revision`), for writers; the rule is base_identity.by_name's."""
    row = by_name(session, name, revision)
    return session.get(m.BaseModel, row.id) if row is not None else None


def require_base_model(session: Session, spec: str) -> m.BaseModel:
    """`spec` is NAME or NAME@REVISION (base_identity.require_base_row); the ORM row, for writers."""
    return session.get_one(m.BaseModel, require_base_row(session, spec).id)
