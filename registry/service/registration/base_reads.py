"""Reading base models: the REST API and the CLI's local mode (`pemreg base-models list|show` imports no
ORM, and no SQLAlchemy once its statements are compiled: tests/test_cli_local_reads.py). A base's
adapters are listed as the caller may read them (the policy's `readable`, inside the query): a private
namespace's adapters are neither named nor counted."""

from __future__ import annotations

from registry.catalog.prepared.statement import ReadStatement
from registry.service.access.standing import bound
from registry.service.catalog.source import CatalogSource
from registry.service.registration.base_named import one_named
from registry.views import BaseModelDetail, BaseModelView

_STATEMENTS = "registry.service.registration.base_statements"
BASES = ReadStatement(f"{_STATEMENTS}:bases")
NAMED = ReadStatement(f"{_STATEMENTS}:named")
ADAPTER_COUNT = ReadStatement(f"{_STATEMENTS}:adapter_count")
ADAPTER_NAMES = ReadStatement(f"{_STATEMENTS}:adapter_names")
REGISTRATION = ReadStatement(f"{_STATEMENTS}:registration")


def list_base_models(src: CatalogSource) -> list[BaseModelView]:
    with src.reading() as db:
        rows = db.rows(BASES)
    return [BaseModelView.of(r) for r in rows]


def show_base_model(src: CatalogSource, label: str, *, limit: int = 100) -> BaseModelDetail:
    """One base (`NAME` or `NAME@REVISION`): its identity, how it came to be, and its adapters."""
    access = src.acting
    name, _, revision = label.partition("@")
    with src.reading() as db:
        row = one_named(db.rows(NAMED, bool(revision), {"name": name, "revision": revision}), name)
        if row is not None:
            mine = {"base_id": row.id, **bound(access)}
            count = db.rows(ADAPTER_COUNT, access.is_admin, mine)[0].count
            names = db.rows(ADAPTER_NAMES, access.is_admin, {**mine, "limit": limit})
            subject = f"base:{row.name}@{row.revision}"[:256]
            registered = db.rows(REGISTRATION, None, {"subject": subject})
    if row is None:
        raise _not_registered(src, label)
    details = registered[0].details if registered else None
    return BaseModelDetail(
        **BaseModelView.of(row).model_dump(),
        created_by=row.created_by,
        auto_registered=bool((details or {}).get("auto")),
        adapter_count=int(count or 0),
        adapters=[f"{ns}/{name}" for ns, name in names],
    )


def _not_registered(src: CatalogSource, label: str) -> Exception:
    """The refusal with near matches (base_identity's rule, on Core: a miss may take longer)."""
    from registry.service.registration.base_identity import not_registered

    with src.connect() as db:
        return not_registered(db, label, "base_model")
