"""Namespace reads on Core over registry.catalog.tables: `whoami`, the namespace listing, one namespace
and its grants, for the REST API and the CLI's local mode alike (which imports no ORM for them:
tests/test_cli_local_reads.py)."""

from __future__ import annotations

from typing import Any

from registry.catalog.clock import utc
from registry.catalog.prepared.statement import ReadConnection, ReadStatement
from registry.errors import NotFound
from registry.refs import validate_namespace
from registry.service.access.identity import Access
from registry.service.access.standing import Standing, bound, standing_of, standing_read, subject_values
from registry.service.catalog.source import CatalogSource
from registry.views import GrantView, NamespaceView, WhoAmI, WhoAmIGrant

_STATEMENTS = "registry.service.access.namespace_statements"
READABLE = ReadStatement(f"{_STATEMENTS}:readable_namespaces")
GRANTS_OF_SUBJECTS = ReadStatement(f"{_STATEMENTS}:grants_of_subjects")
OWNED_NAMESPACES = ReadStatement(f"{_STATEMENTS}:owned_namespaces")
GRANTS = ReadStatement(f"{_STATEMENTS}:grants")


def namespace_view(row: Any, st: Standing) -> NamespaceView:
    """A namespace row (ORM or Core: the same attribute names) as the caller stands in it."""
    return NamespaceView(
        name=row.name,
        visibility=row.visibility,
        protected_aliases=list(row.protected_aliases or []),
        description=row.description,
        owned=st.owned,
        created_by=row.created_by,
        created_at=utc(row.created_at),
        updated_at=utc(row.updated_at),
        role=st.role,
        via=st.via if st.role else None,
    )


def list_namespaces(src: CatalogSource) -> list[NamespaceView]:
    """The namespaces the caller may read (filtered in the query), each with the caller's role: three
    queries whatever their number."""
    access = src.acting
    with src.reading() as db:
        rows = db.rows(READABLE, access.is_admin, bound(access))
        mine: dict[str, list[tuple[str, str]]] = {}
        for ns, role, subject in db.rows(GRANTS_OF_SUBJECTS, len(access.subjects), subject_values(access)):
            mine.setdefault(ns, []).append((subject, role))
        owned = {row.namespace for row in db.rows(OWNED_NAMESPACES, access.is_admin, bound(access))}
    out = []
    for row in rows:
        st = standing_of(access, row.name, row, tuple(mine.get(row.name, ())), row.name in owned)
        if st.role is not None:
            out.append(namespace_view(row, st))
    return out


def whoami(src: CatalogSource) -> WhoAmI:
    access = src.acting
    with src.reading() as db:
        rows = db.rows(GRANTS_OF_SUBJECTS, len(access.subjects), subject_values(access))
    return WhoAmI(
        principal=access.principal,
        groups=list(access.groups),
        role=access.role,
        grants=[WhoAmIGrant(namespace=ns, role=role, via=subject) for ns, role, subject in rows],
    )


def missing(namespace: str) -> str:
    return f"namespace {namespace} not found"


def get_namespace(src: CatalogSource, namespace: str) -> NamespaceView:
    """One namespace as the caller stands in it; one it may not read is not found (as one that does not
    exist)."""
    validate_namespace(namespace)
    with src.reading() as db:
        return namespace_shown(db, src.acting, namespace)


def namespace_shown(db: ReadConnection, access: Access, namespace: str) -> NamespaceView:
    """`get_namespace` on a connection or session the caller holds: a change reads its namespace back
    through its own write session (CoreReads(session)), never waiting for one of the read pool's
    (tests/test_db_pool_size.py)."""
    row, st = standing_read(db, access, namespace)
    if row is None or st.role is None:
        raise NotFound(missing(namespace))
    return namespace_view(row, st)


def list_grants(src: CatalogSource, namespace: str) -> list[GrantView]:
    """Who holds which role: readable by whoever may read the namespace (as an organisation's members
    see each other)."""
    validate_namespace(namespace)
    with src.reading() as db:
        _, st = standing_read(db, src.acting, namespace)
        if st.role is None:
            raise NotFound(missing(namespace))
        rows = db.rows(GRANTS, None, {"namespace": namespace})
    return [
        GrantView(
            namespace=r.namespace,
            subject=r.subject,
            role=r.role,
            granted_by=r.granted_by,
            granted_at=utc(r.granted_at),
        )
        for r in rows
    ]
