"""Authentication and roles: `Authorization: Bearer <key>`; reader < writer < admin.

The check runs as a dependency, before the route touches the catalog, and hands the route a Registry
whose principal is the key's name, so every audit event a mutation writes names the key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from registry.errors import PermissionDenied, Unauthenticated
from registry.service import Registry
from registry.service.admin.keys import ROLES, authenticate

# auto_error=False: we answer 401 ourselves, in the common error shape, with WWW-Authenticate.
bearer = HTTPBearer(auto_error=False, description="an API key from `pemreg keys create`")


@dataclass(frozen=True)
class Caller:
    name: str
    role: str
    reg: Registry  # acts as `name`: audit events and created_by record the key's name


def base_registry(request: Request) -> Registry:
    return request.app.state.registry


def require(role: str) -> Callable[..., Caller]:
    """A dependency that lets in keys of `role` or above."""
    needed = ROLES.index(role)

    def check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Caller:
        if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
            raise Unauthenticated("missing API key: send 'Authorization: Bearer <key>'")
        base = base_registry(request)
        key = authenticate(base, credentials.credentials)
        if ROLES.index(key.role) < needed:
            raise PermissionDenied(f"API key {key.name!r} has role {key.role}; this needs {role} or above")
        request.state.principal = key.name
        return Caller(name=key.name, role=key.role, reg=base.acting_as(key.principal))

    return check


Reader = Annotated[Caller, Depends(require("reader"))]
Writer = Annotated[Caller, Depends(require("writer"))]
Admin = Annotated[Caller, Depends(require("admin"))]
