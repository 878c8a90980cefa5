"""/v1/keys: API key administration (admin only). The secret is returned once, stored hashed."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import Admin
from api.errors import ERROR_RESPONSES
from api.schemas import KeyCreated, KeyIn
from registry.service.keys import create_key, revoke_key

router = APIRouter(prefix="/v1/keys", tags=["keys"], responses=ERROR_RESPONSES)


@router.post("", status_code=201, response_model=KeyCreated)
def create(caller: Admin, body: KeyIn) -> KeyCreated:
    return KeyCreated(name=body.name, role=body.role, key=create_key(caller.reg, body.name, body.role))


@router.delete("/{name}", status_code=204, response_class=Response)
def revoke(caller: Admin, name: str) -> Response:
    revoke_key(caller.reg, name)
    return Response(status_code=204)
