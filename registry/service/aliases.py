"""Aliases: mutable pointers `ns/name@alias`; every move is an audit event."""

from __future__ import annotations

from sqlalchemy.orm import Session

from ..catalog import models as m
from ..catalog.db import transaction
from ..refs import Ref, parse_ref, validate_alias
from . import audit
from .context import Registry
from .resolve import aliases_of, resolve_version
from .views import VersionView


def move_alias(session: Session, actor: str, target: m.AdapterVersion, alias: str) -> None:
    """Inside the caller's transaction: point `alias` of target's adapter at `target`."""
    validate_alias(alias)
    current = session.get(m.Alias, (target.adapter_id, alias), with_for_update=True)
    previous = None
    if current is None:
        session.add(
            m.Alias(adapter_id=target.adapter_id, alias=alias, version_id=target.id, updated_by=actor)
        )
    else:
        previous = session.get_one(m.AdapterVersion, current.version_id).version
        current.version_id = target.id
        current.updated_by = actor
        current.updated_at = m.utcnow()
    if previous != target.version:
        audit.record(
            session,
            actor,
            "alias_move",
            f"{target.adapter.full_name}@{alias}",
            alias=alias,
            from_version=previous,
            to_version=target.version,
        )
    session.flush()


def set_alias(reg: Registry, ref: Ref | str, alias: str) -> VersionView:
    validate_alias(alias)
    ref = parse_ref(ref) if isinstance(ref, str) else ref
    with transaction(reg.sessions) as session:
        target = resolve_version(session, ref)
        move_alias(session, reg.principal, target, alias)
        return VersionView.of(target, aliases_of(session, target))
