"""resolve_row's statement (registry.service.catalog.resolve), one per kind of selector: Core over
registry.catalog.tables, built on the server and compiled for the CLI's local reads
(registry.catalog.prepared)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Integer, Select, String, and_, bindparam, exists, func, select

from registry.catalog import tables as t
from registry.service.access.policy import readable_bound
from registry.service.catalog.resolve import LISTED, ResolveShape

_a, _v, _bm, _al, _tv = (
    t.adapters.c,
    t.adapter_versions.c,
    t.base_models.c,
    t.aliases.c,
    t.training_values.c,
)
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
# A version's aliases, comma-joined (an alias has no comma: registry.refs.ALIAS_PATTERN), and whether it
# has a training record (read only then): the version and both in the version's one round trip.
ALIASES = (
    select(func.aggregate_strings(_al.alias, ","))
    .where(_al.version_id == _v.id)
    .correlate(t.adapter_versions)  # not aliases: `@alias` refs join that table in the outer query
    .scalar_subquery()
    .label("alias_list")
)
HAS_TRAINING = exists().where(_tv.version_id == _v.id).label("has_training")
_EXTRA: dict[str, tuple[ColumnElement[Any], ...]] = {"": (), "shown": (ALIASES, HAS_TRAINING)}


def resolve(shape: ResolveShape) -> Select[Any]:
    """The statement for one kind of selector (version | digest | alias | latest): the ref's parts are
    bound at execution (`namespace`, `name`, `selector`, the policy's subjects)."""
    on: ColumnElement[bool]
    joined = t.adapters.join(t.base_models, _bm.id == _a.base_model_id)
    columns: tuple[Any, ...] = (*ADAPTER_COLUMNS, *VERSION_COLUMNS, *_EXTRA[shape.extra])
    if shape.kind == "version":
        on = _v.version == bindparam("selector", type_=Integer)
    elif shape.kind == "digest":
        on = _v.sha256.startswith(bindparam("selector", type_=String))
        if not shape.include_deleted:
            on = and_(on, _v.status != "deleted")
    elif shape.kind == "alias":
        named = and_(_al.adapter_id == _a.id, _al.alias == bindparam("selector", type_=String))
        joined = joined.outerjoin(t.aliases, named)
        columns = (*columns, _al.alias.label("alias_found"))
    else:
        latest = (
            select(func.max(_LATER.version))
            .where(_LATER.adapter_id == _a.id, _LATER.status.in_(LISTED))
            .scalar_subquery()
        )
        on = _v.version == latest
    if shape.kind == "alias":
        joined = joined.outerjoin(t.adapter_versions, _v.id == _al.version_id)
    else:
        joined = joined.outerjoin(t.adapter_versions, and_(_v.adapter_id == _a.id, on))
    return (
        select(*columns)
        .select_from(joined)
        .where(
            _a.namespace == bindparam("namespace"),
            _a.name == bindparam("name"),
            readable_bound(shape.admin, _a.namespace),
        )
        .limit(2)
    )
