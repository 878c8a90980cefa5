"""Turn a reference (`ns/name@N|@alias|@sha256:prefix|@latest`) into the exact catalog row, as seen by
a principal: an adapter in a namespace it cannot read is not found (the same answer as a missing one).

The rule is one Core statement (`resolve_row`): the adapter, filtered by the policy's `readable`, outer
joined to the version the selector names, so one round trip answers both "is there such an adapter
(for this principal)" and "which version". Core reads (REST, the CLI) use the row as it comes;
writers get the ORM object through `resolve_version`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Integer, Row, Select, String, and_, bindparam, func, select

from registry.catalog import tables as t
from registry.errors import InvalidInput, NotFound
from registry.refs import Ref, parse_ref
from registry.service.access.identity import Access
from registry.service.access.policy import bound, readable, readable_bound

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from registry.catalog import models as m

# What `latest` and default listings see: archived and deleted versions are skipped.
LISTED = ("active", "deprecated")

_a, _v, _bm = t.adapters.c, t.adapter_versions.c, t.base_models.c
_LATER = t.adapter_versions.alias("later").c  # built once: an alias derives its columns on first use

# A version as reads show it (VersionView's fields), beside its adapter's.
VERSION_COLUMNS = (
    _v.id,
    _v.version,
    _v.sha256,
    _v.rank,
    _v.alpha,
    _v.use_rslora,
    _v.target_modules,
    _v.dtype,
    _v.size_bytes,
    _v.num_parameters,
    _v.files,
    _v.artifact_uri,
    _v.created_by,
    _v.created_at,
    _v.status,
    _v.status_changed_at,
    _v.deleted_at,
)
ADAPTER_COLUMNS = (
    _a.id.label("adapter_id"),
    _a.namespace,
    _a.name.label("adapter_name"),
    _a.pem_type,
    _bm.name.label("base_model"),
)


def get_adapter_row(session: Session, namespace: str, name: str, access: Access) -> m.Adapter:
    from registry.catalog import models as m

    row = session.scalar(
        select(m.Adapter).where(
            m.Adapter.namespace == namespace, m.Adapter.name == name, readable(access, m.Adapter.namespace)
        )
    )
    if row is None:
        raise NotFound(f"adapter {namespace}/{name} not found")
    return row


def _usable(ref: Ref, row: Row[Any], include_deleted: bool) -> Row[Any]:
    if row.status == "deleted" and not include_deleted:
        when = f" on {row.deleted_at:%Y-%m-%d}" if row.deleted_at else ""
        raise NotFound(f"{ref}: version {row.version} was deleted{when} (sha256:{row.sha256[:12]})")
    return row


@lru_cache(maxsize=64)
def _statement(
    kind: str, include_deleted: bool, admin: bool, extra: tuple[ColumnElement[Any], ...]
) -> Select[Any]:
    """resolve_row's statement for one kind of selector (version | digest | alias | latest), built once:
    the ref's parts are bound at execution (`namespace`, `name`, `selector`, the policy's subjects)."""
    on: ColumnElement[bool]
    joined = t.adapters.join(t.base_models, _bm.id == _a.base_model_id)
    columns: tuple[Any, ...] = (*ADAPTER_COLUMNS, *VERSION_COLUMNS, *extra)
    if kind == "version":
        on = _v.version == bindparam("selector", type_=Integer)
    elif kind == "digest":
        on = _v.sha256.startswith(bindparam("selector", type_=String))
        if not include_deleted:
            on = and_(on, _v.status != "deleted")
    elif kind == "alias":
        al = t.aliases.c
        joined = joined.outerjoin(t.aliases, and_(al.adapter_id == _a.id, al.alias == bindparam("selector")))
        columns = (*columns, al.alias.label("alias_found"))
    else:
        latest = (
            select(func.max(_LATER.version))
            .where(_LATER.adapter_id == _a.id, _LATER.status.in_(LISTED))
            .scalar_subquery()
        )
        on = _v.version == latest
    if kind == "alias":
        joined = joined.outerjoin(t.adapter_versions, _v.id == t.aliases.c.version_id)
    else:
        joined = joined.outerjoin(t.adapter_versions, and_(_v.adapter_id == _a.id, on))
    return (
        select(*columns)
        .select_from(joined)
        .where(
            _a.namespace == bindparam("namespace"),
            _a.name == bindparam("name"),
            readable_bound(admin, _a.namespace),
        )
        .limit(2)
    )


def resolve_row(
    db: Any,
    ref: Ref | str,
    *,
    access: Access,
    include_deleted: bool = False,
    extra: tuple[ColumnElement[Any], ...] = (),
) -> Row[Any]:
    """The version `ref` names, as one row of ADAPTER_COLUMNS + VERSION_COLUMNS + `extra` (columns over
    adapter_versions, e.g. its aliases), read through `db` (a Core Connection or an ORM Session).

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
    query = _statement(kind, include_deleted, access.is_admin, extra)
    rows = db.execute(query, values).all()
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

    row = resolve_row(session, ref, access=access, include_deleted=include_deleted)
    return session.get_one(m.AdapterVersion, row.id)


def aliases_of(session: Session, version: m.AdapterVersion) -> list[str]:
    return list(session.scalars(select(t.aliases.c.alias).where(t.aliases.c.version_id == version.id)))
