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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from registry.errors import Unauthenticated
from registry.service import Registry
from registry.service.access.identity import Access
from registry.service.access.oidc import OidcVerifier, looks_like_jwt
from registry.service.access.policy import require_global
from registry.service.access.principals import remember
from registry.service.admin.keys import KEY_PREFIX, authenticate, remembered

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


def authorize(request: Request, credentials: HTTPAuthorizationCredentials | None, role: str) -> Caller:
    """The caller of `credentials` if its global role is `role` or above; else 401 or 403. May read the
    catalog (a key not accepted within the last second, an SSO issuer's keys): call it off the loop."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthenticated("missing credentials: send 'Authorization: Bearer <API key or token>'")
    return _caller(request, authenticate_token(request, credentials.credentials), role)


def _caller(request: Request, access: Access, role: str) -> Caller:
    request.state.principal = access.principal
    require_global(access, role, action=f"{request.method} {request.url.path}", subject=request.url.path)
    return Caller(name=access.principal, role=access.role, reg=base_registry(request).acting_as(access))


def require(role: str) -> Callable[..., Awaitable[Caller]]:
    """A dependency that lets in principals whose global role is `role` or above.

    Async, so a request whose API key was accepted within the cache bound (keys.remembered: no I/O) is
    let in on the event loop; only a lookup in the catalog or at the SSO issuer runs in the thread
    pool. A sync dependency cost every request a thread hop of its own before the route's."""

    async def check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Caller:
        token = credentials.credentials if credentials and credentials.scheme.lower() == "bearer" else ""
        access = remembered(base_registry(request), token) if token.startswith(KEY_PREFIX) else None
        if access is None:
            return await run_in_threadpool(authorize, request, credentials, role)
        return _caller(request, access, role)

    return check


# Any signed-in principal: what it may do in a namespace is the policy's to decide, in the service call.
SignedIn = Annotated[Caller, Depends(require("reader"))]
Reader = SignedIn
Writer = Annotated[Caller, Depends(require("writer"))]
Admin = Annotated[Caller, Depends(require("admin"))]
