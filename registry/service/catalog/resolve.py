"""Turn a reference (`ns/name@N|@alias|@sha256:prefix|@latest`) into the exact catalog row, as seen by
a principal: an adapter in a namespace it cannot read is not found (the same answer as a missing one).

The rule is one Core statement per kind of selector (resolve_statements.resolve): the adapter, filtered
by the policy's `readable`, outer joined to the version the selector names, so one round trip answers
both "is there such an adapter (for this principal)" and "which version". Reads (REST, the CLI) use the
row as it comes; writers get the ORM object through `resolve_version`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from registry.catalog.prepared.core import CoreReads
from registry.catalog.prepared.statement import ReadConnection, ReadStatement
from registry.errors import InvalidInput, NotFound
from registry.refs import Ref, parse_ref
from registry.service.access.identity import Access
from registry.service.access.standing import bound

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from registry.catalog import models as m

# What `latest` and default listings see: archived and deleted versions are skipped.
LISTED = ("active", "deprecated")
RESOLVE = ReadStatement("registry.service.catalog.resolve_statements:resolve")


@dataclass(frozen=True)
class ResolveShape:
    kind: str  # version | digest | alias | latest
    include_deleted: bool
    admin: bool
    extra: str = ""  # "shown": also the version's aliases and whether it has a training record


def get_adapter_row(session: Session, namespace: str, name: str, access: Access) -> m.Adapter:
    from sqlalchemy import select

    from registry.catalog import models as m
    from registry.service.access.policy import readable

    row = session.scalar(
        select(m.Adapter).where(
            m.Adapter.namespace == namespace, m.Adapter.name == name, readable(access, m.Adapter.namespace)
        )
    )
    if row is None:
        raise NotFound(f"adapter {namespace}/{name} not found")
    return row


def _usable(ref: Ref, row: Any, include_deleted: bool) -> Any:
    if row.status == "deleted" and not include_deleted:
        when = f" on {row.deleted_at:%Y-%m-%d}" if row.deleted_at else ""
        raise NotFound(f"{ref}: version {row.version} was deleted{when} (sha256:{row.sha256[:12]})")
    return row


def resolve_row(
    db: ReadConnection,
    ref: Ref | str,
    *,
    access: Access,
    include_deleted: bool = False,
    extra: str = "",
) -> Any:
    """The version `ref` names, as one row of resolve_statements' ADAPTER_COLUMNS + VERSION_COLUMNS
    (with `extra="shown"`, its aliases and whether it has a training record too).

    A number, alias or digest names that version even when archived or deprecated; `latest` skips
    archived ones. A deleted version is NotFound unless `include_deleted` (lineage, audit)."""
    if isinstance(ref, str):
        ref = parse_ref(ref)
    values: dict[str, Any] = {"namespace": ref.namespace, "name": ref.name, **bound(access)}
    if ref.version is not None:
        kind, values["selector"] = "version", ref.version
    elif ref.sha256_prefix is not None:
        kind, values["selector"] = "digest", ref.sha256_prefix
    elif ref.alias is not None:
        kind, values["selector"] = "alias", ref.alias
    else:
        kind = "latest"
    rows = db.rows(RESOLVE, ResolveShape(kind, include_deleted, access.is_admin, extra), values)
    if not rows:
        raise NotFound(f"adapter {ref.namespace}/{ref.name} not found")
    row = rows[0]
    if ref.sha256_prefix is not None:
        if len(rows) > 1:
            raise InvalidInput(f"{ref}: sha256 prefix is ambiguous; give more digits", field="ref")
        if row.id is None:
            raise NotFound(f"{ref}: no version with that digest")
        return row
    if ref.alias is not None:
        if row.alias_found is None:
            raise NotFound(f"{ref}: no alias {ref.alias!r} on {ref.full_name}")
        return _usable(ref, row, include_deleted)
    if ref.version is None:
        if row.id is None:
            raise NotFound(f"{ref}: no active version (all are archived or deleted; name one by number)")
        return row
    if row.id is None:
        raise NotFound(f"{ref}: no such version")
    return _usable(ref, row, include_deleted)


def resolve_version(
    session: Session, ref: Ref | str, *, access: Access, include_deleted: bool = False
) -> m.AdapterVersion:
    """`resolve_row`'s version as the ORM object (for writers, who change it or link to it)."""
    from registry.catalog import models as m

    row = resolve_row(CoreReads(session), ref, access=access, include_deleted=include_deleted)
    return session.get_one(m.AdapterVersion, row.id)


def aliases_of(session: Session, version: m.AdapterVersion) -> list[str]:
    from sqlalchemy import select

    from registry.catalog import tables as t

    return list(session.scalars(select(t.aliases.c.alias).where(t.aliases.c.version_id == version.id)))
