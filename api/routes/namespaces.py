"""/v1/namespaces (namespaces and their grants) and /v1/whoami.

Listing and reading show only what the caller may read; creating a namespace is for admins; changing
one (visibility, protected aliases, description) and its grants is for its maintainers (and admins).
Every change is an audit event; a refused one too.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from api.deps import Admin, Reader, SignedIn
from api.errors import ERROR_RESPONSES
from api.schemas import GrantIn, NamespaceIn, NamespacePatch
from registry.service.access import namespace_reads
from registry.service.access import namespaces as service
from registry.views import GrantView, NamespaceView, WhoAmI

from .common import Namespace
from .reads import catalog_read

router = APIRouter(prefix="/v1", tags=["namespaces"], responses=ERROR_RESPONSES)
Subject = Annotated[
    str,
    Path(
        description="key:<name>, user:<sub> or group:<name>",
        json_schema_extra={"pattern": r"^(key|user|group):[^\x00-\x1f\x7f]{1,200}$"},
    ),
]


@router.get("/namespaces", response_model=list[NamespaceView])
@catalog_read
def list_namespaces(caller: Reader) -> list[NamespaceView]:
    """The namespaces the caller may read, each with the caller's role there and why."""
    return namespace_reads.list_namespaces(caller.reg)


@router.post("/namespaces", status_code=201, response_model=NamespaceView)
def create_namespace(caller: Admin, body: NamespaceIn) -> NamespaceView:
    return service.create_namespace(
        caller.reg,
        body.name,
        visibility=body.visibility,
        protected_aliases=list(body.protected_aliases),
        description=body.description,
    )


@router.get("/namespaces/{ns}", response_model=NamespaceView)
@catalog_read
def get_namespace(caller: Reader, ns: Namespace) -> NamespaceView:
    return namespace_reads.get_namespace(caller.reg, ns)


@router.patch("/namespaces/{ns}", response_model=NamespaceView)
def update_namespace(caller: SignedIn, ns: Namespace, body: NamespacePatch) -> NamespaceView:
    """Maintainers: each field given replaces the old value."""
    return service.update_namespace(
        caller.reg,
        ns,
        visibility=body.visibility,
        protected_aliases=list(body.protected_aliases) if body.protected_aliases is not None else None,
        description=body.description,
    )


@router.get("/namespaces/{ns}/grants", response_model=list[GrantView])
@catalog_read
def list_grants(caller: Reader, ns: Namespace) -> list[GrantView]:
    return namespace_reads.list_grants(caller.reg, ns)


@router.put("/namespaces/{ns}/grants/{subject:path}", response_model=GrantView)
def set_grant(caller: SignedIn, ns: Namespace, subject: Subject, body: GrantIn) -> GrantView:
    """Maintainers: give `subject` this role in the namespace (replacing its previous one)."""
    return service.set_grant(caller.reg, ns, subject, body.role)


@router.delete("/namespaces/{ns}/grants/{subject:path}", status_code=204, response_class=Response)
def revoke_grant(caller: SignedIn, ns: Namespace, subject: Subject) -> Response:
    """Maintainers. Effective from the next request of the subject (no grant is cached)."""
    service.revoke_grant(caller.reg, ns, subject)
    return Response(status_code=204)


@router.get("/whoami", response_model=WhoAmI)
@catalog_read
def whoami(caller: Reader) -> WhoAmI:
    """The principal, its groups, its global role and its namespace grants (direct or via a group)."""
    return namespace_reads.whoami(caller.reg)
