"""Authentication and the global role: `Authorization: Bearer <API key or OIDC token>`.

The check runs as a dependency, before the route touches the catalog, and hands the route a Registry
acting as the principal (`key:<name>`, or `user:<sub>` for an SSO token), so every audit event a
mutation writes names it and every read and write is decided by the one policy
(registry.service.access.policy) with that principal's grants. The global role (reader < writer <
admin) gates registry-wide routes here; namespace routes let any signed-in principal through and the
policy decides per namespace (a namespace writer needs no global writer role).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from registry.errors import Unauthenticated
from registry.service import Registry
from registry.service.access.identity import Access
from registry.service.access.oidc import OidcVerifier, looks_like_jwt
from registry.service.access.policy import require_global
from registry.service.access.principals import remember
from registry.service.admin.keys import KEY_PREFIX, authenticate

# auto_error=False: we answer 401 ourselves, in the common error shape, with WWW-Authenticate.
bearer = HTTPBearer(
    auto_error=False, description="an API key from `pemreg keys create`, or a JWT from the SSO issuer"
)
_verifier_lock = threading.Lock()


@dataclass(frozen=True)
class Caller:
    name: str  # the principal: key:<name> | user:<sub> | anonymous
    role: str  # its global role
    reg: Registry  # acts as the principal: audit events, created_by and every policy decision

    @property
    def access(self) -> Access:
        return self.reg.acting


def base_registry(request: Request) -> Registry:
    return request.app.state.registry


def oidc_verifier(app: FastAPI) -> OidcVerifier | None:
    """The app's verifier (its key cache lives as long as the app), or None without SSO configured."""
    settings = app.state.registry.settings
    if not settings.oidc_issuer:
        return None
    with _verifier_lock:
        if getattr(app.state, "oidc", None) is None:
            app.state.oidc = OidcVerifier(settings)
        verifier: OidcVerifier = app.state.oidc
        return verifier


def authenticate_token(request: Request, token: str) -> Access:
    """An API key (`pemreg_...`) or, with SSO configured, a JWT of the issuer; else 401."""
    base = base_registry(request)
    if token.startswith(KEY_PREFIX):
        return authenticate(base, token)
    verifier = oidc_verifier(request.app)
    if verifier is None or not looks_like_jwt(token):
        raise Unauthenticated("invalid API key")
    access = verifier.access(verifier.verify(token))
    remember(base, access)  # its groups, for runs it stores that start later
    return access


def require(role: str) -> Callable[..., Caller]:
    """A dependency that lets in principals whose global role is `role` or above."""

    def check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Caller:
        if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
            raise Unauthenticated("missing credentials: send 'Authorization: Bearer <API key or token>'")
        access = authenticate_token(request, credentials.credentials)
        request.state.principal = access.principal
        require_global(access, role, action=f"{request.method} {request.url.path}", subject=request.url.path)
        return Caller(name=access.principal, role=access.role, reg=base_registry(request).acting_as(access))

    return check


# Any signed-in principal: what it may do in a namespace is the policy's to decide, in the service call.
SignedIn = Annotated[Caller, Depends(require("reader"))]
Reader = SignedIn
Writer = Annotated[Caller, Depends(require("writer"))]
Admin = Annotated[Caller, Depends(require("admin"))]
