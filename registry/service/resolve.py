"""Turn a reference (`ns/name@N|@alias|@sha256:prefix|@latest`) into the exact catalog row."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..catalog import models as m
from ..errors import InvalidInput, NotFound
from ..refs import Ref, parse_ref


def get_adapter_row(session: Session, namespace: str, name: str) -> m.Adapter:
    row = session.scalar(select(m.Adapter).where(m.Adapter.namespace == namespace, m.Adapter.name == name))
    if row is None:
        raise NotFound(f"adapter {namespace}/{name} not found")
    return row


def resolve_version(session: Session, ref: Ref | str) -> m.AdapterVersion:
    if isinstance(ref, str):
        ref = parse_ref(ref)
    adapter = get_adapter_row(session, ref.namespace, ref.name)
    query = select(m.AdapterVersion).where(m.AdapterVersion.adapter_id == adapter.id)
    if ref.version is not None:
        query = query.where(m.AdapterVersion.version == ref.version)
    elif ref.sha256_prefix is not None:
        query = query.where(m.AdapterVersion.sha256.startswith(ref.sha256_prefix))
        matches = session.scalars(query.limit(2)).all()
        if len(matches) > 1:
            raise InvalidInput(f"{ref}: sha256 prefix is ambiguous; give more digits", field="ref")
        if not matches:
            raise NotFound(f"{ref}: no version with that digest")
        return matches[0]
    elif ref.alias is not None:
        alias = session.get(m.Alias, (adapter.id, ref.alias))
        if alias is None:
            raise NotFound(f"{ref}: no alias {ref.alias!r} on {ref.full_name}")
        return session.get_one(m.AdapterVersion, alias.version_id)
    else:
        latest = select(func.max(m.AdapterVersion.version)).where(m.AdapterVersion.adapter_id == adapter.id)
        query = query.where(m.AdapterVersion.version == latest.scalar_subquery())
    row = session.scalar(query)
    if row is None:
        raise NotFound(f"{ref}: no such version")
    return row


def aliases_of(session: Session, version: m.AdapterVersion) -> list[str]:
    return list(session.scalars(select(m.Alias.alias).where(m.Alias.version_id == version.id)))
