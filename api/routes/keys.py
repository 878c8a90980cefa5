"""/v1/keys: API key administration (admin only). The secret is returned once, stored hashed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.deps import Admin
from api.errors import ERROR_RESPONSES
from api.schemas import KeyCreated, KeyIn
from registry.service.admin.key_reads import list_keys
from registry.service.admin.keys import create_key, revoke_key
from registry.views import KeyView

router = APIRouter(prefix="/v1/keys", tags=["keys"], responses=ERROR_RESPONSES)


@router.post("", status_code=201, response_model=KeyCreated)
def create(caller: Admin, body: KeyIn) -> KeyCreated:
    return KeyCreated(name=body.name, role=body.role, key=create_key(caller.reg, body.name, body.role))


@router.get("", response_model=list[KeyView])
def list_(
    caller: Admin, include_revoked: Annotated[bool, Query(description="also revoked keys")] = True
) -> list[KeyView]:
    """Names, roles and dates; never the secrets."""
    return list_keys(caller.reg, include_revoked=include_revoked)


@router.delete("/{name}", status_code=204, response_class=Response)
def revoke(caller: Admin, name: str) -> Response:
    revoke_key(caller.reg, name)
    return Response(status_code=204)
