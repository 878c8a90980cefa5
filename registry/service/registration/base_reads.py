"""Reading base models, on Core over registry.catalog.tables: the REST API and the CLI's local mode
(`pemreg base-models list|show` imports no ORM: tests/test_cli_local_reads.py). A base's adapters are
listed as the caller may read them (the policy's `readable`, inside the query): a private namespace's
adapters are neither named nor counted."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from registry.catalog import tables as t
from registry.service.access.policy import readable
from registry.service.catalog.source import CatalogSource
from registry.service.registration.base_identity import Db, by_name, not_registered
from registry.views import BaseModelDetail, BaseModelView

_b, _a, _e = t.base_models.c, t.adapters.c, t.audit_events.c


def list_base_models(src: CatalogSource) -> list[BaseModelView]:
    with src.connect() as db:
        rows = db.execute(select(t.base_models).order_by(_b.name, _b.revision)).all()
    return [BaseModelView.of(r) for r in rows]


def require_base_row(db: Db, spec: str) -> Any:
    """`spec` is NAME or NAME@REVISION; NotFound (with near matches) when no base is registered so."""
    name, _, revision = spec.partition("@")
    row = by_name(db, name, revision or None)
    if row is None:
        raise not_registered(db, spec, "base_model")
    return row


def _auto_registered(db: Db, row: Any) -> bool:
    details = db.execute(
        select(_e.details)
        .where(_e.subject == f"base:{row.name}@{row.revision}"[:256], _e.action == "register_base_model")
        .order_by(_e.id)
        .limit(1)
    ).scalar()
    return bool((details or {}).get("auto"))


def show_base_model(src: CatalogSource, label: str, *, limit: int = 100) -> BaseModelDetail:
    """One base (`NAME` or `NAME@REVISION`): its identity, how it came to be, and its adapters."""
    seen = readable(src.acting, _a.namespace)
    with src.connect() as db:
        row = require_base_row(db, label)
        count = db.execute(
            select(func.count()).select_from(t.adapters).where(_a.base_model_id == row.id, seen)
        ).scalar()
        names = db.execute(
            select(_a.namespace, _a.name)
            .where(_a.base_model_id == row.id, seen)
            .order_by(_a.namespace, _a.name)
            .limit(limit)
        ).all()
        auto = _auto_registered(db, row)
    return BaseModelDetail(
        **BaseModelView.of(row).model_dump(),
        created_by=row.created_by,
        auto_registered=auto,
        adapter_count=int(count or 0),
        adapters=[f"{ns}/{name}" for ns, name in names],
    )
