"""Aliases: mutable pointers `ns/name@alias`; every move is an audit event."""

from __future__ import annotations

from sqlalchemy.orm import Session

from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.catalog.upsert import insert_ignore
from registry.refs import Ref, parse_ref, validate_alias
from registry.service.access.policy import require_alias
from registry.service.catalog import audit
from registry.service.catalog.resolve import aliases_of, resolve_version
from registry.service.context import Registry
from registry.service.events import outbox
from registry.views import VersionView


def move_alias(session: Session, actor: str, target: m.AdapterVersion, alias: str) -> None:
    """Inside the caller's transaction: point `alias` of target's adapter at `target`. The caller has
    checked the move with `policy.require_alias` (protected aliases take a maintainer)."""
    validate_alias(alias)
    key = (target.adapter_id, alias)
    current = session.get(m.Alias, key, with_for_update=True)
    previous = None
    # A new alias is inserted ON CONFLICT DO NOTHING: of concurrent first PUTs one inserts, the others
    # wait on its row and then move it like an existing alias (never a unique-key violation).
    created = current is None and insert_ignore(
        session,
        m.Alias,
        {
            "adapter_id": target.adapter_id,
            "alias": alias,
            "version_id": target.id,
            "updated_by": actor,
            "updated_at": m.utcnow(),
        },
        conflict=["adapter_id", "alias"],
    )
    if not created:
        current = session.get(m.Alias, key, with_for_update=True, populate_existing=True)
        assert current is not None
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
        outbox.alias_moved(session, target, alias, previous, actor)
    session.flush()


def set_alias(reg: Registry, ref: Ref | str, alias: str) -> VersionView:
    validate_alias(alias)
    ref = parse_ref(ref) if isinstance(ref, str) else ref
    with transaction(reg.sessions) as session:
        require_alias(session, reg.acting, ref.full_name, alias, "alias_move")
        target = resolve_version(session, ref, access=reg.acting)
        move_alias(session, reg.principal, target, alias)
        return VersionView.of(target, aliases_of(session, target))
