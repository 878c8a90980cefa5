"""Turn a reference (`ns/name@N|@alias|@sha256:prefix|@latest`) into the exact catalog row, as seen by
a principal: an adapter in a namespace it cannot read is not found (the same answer as a missing one)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.catalog import models as m
from registry.errors import InvalidInput, NotFound
from registry.refs import Ref, parse_ref
from registry.service.access.identity import Access
from registry.service.access.policy import readable


def get_adapter_row(session: Session, namespace: str, name: str, access: Access) -> m.Adapter:
    row = session.scalar(
        select(m.Adapter).where(
            m.Adapter.namespace == namespace, m.Adapter.name == name, readable(access, m.Adapter.namespace)
        )
    )
    if row is None:
        raise NotFound(f"adapter {namespace}/{name} not found")
    return row


# What `latest` and default listings see: archived and deleted versions are skipped.
LISTED = ("active", "deprecated")


def _usable(ref: Ref, row: m.AdapterVersion, include_deleted: bool) -> m.AdapterVersion:
    if row.status == "deleted" and not include_deleted:
        when = f" on {row.deleted_at:%Y-%m-%d}" if row.deleted_at else ""
        raise NotFound(f"{ref}: version {row.version} was deleted{when} (sha256:{row.sha256[:12]})")
    return row


def resolve_version(
    session: Session, ref: Ref | str, *, access: Access, include_deleted: bool = False
) -> m.AdapterVersion:
    """A number, alias or digest names that version even when archived or deprecated; `latest` skips
    archived ones. A deleted version is NotFound unless `include_deleted` (lineage, audit)."""
    if isinstance(ref, str):
        ref = parse_ref(ref)
    adapter = get_adapter_row(session, ref.namespace, ref.name, access)
    query = select(m.AdapterVersion).where(m.AdapterVersion.adapter_id == adapter.id)
    if ref.version is not None:
        query = query.where(m.AdapterVersion.version == ref.version)
    elif ref.sha256_prefix is not None:
        query = query.where(m.AdapterVersion.sha256.startswith(ref.sha256_prefix))
        if not include_deleted:
            query = query.where(m.AdapterVersion.status != "deleted")
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
        return _usable(ref, session.get_one(m.AdapterVersion, alias.version_id), include_deleted)
    else:
        latest = select(func.max(m.AdapterVersion.version)).where(
            m.AdapterVersion.adapter_id == adapter.id, m.AdapterVersion.status.in_(LISTED)
        )
        query = query.where(m.AdapterVersion.version == latest.scalar_subquery())
        row = session.scalar(query)
        if row is None:
            raise NotFound(f"{ref}: no active version (all are archived or deleted; name one by number)")
        return row
    row = session.scalar(query)
    if row is None:
        raise NotFound(f"{ref}: no such version")
    return _usable(ref, row, include_deleted)


def aliases_of(session: Session, version: m.AdapterVersion) -> list[str]:
    return list(session.scalars(select(m.Alias.alias).where(m.Alias.version_id == version.id)))
