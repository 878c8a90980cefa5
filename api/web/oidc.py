"""Web sign-in through the SSO issuer: OAuth 2 authorization code with PKCE (S256), `state` and `nonce`
checked, the ID token verified like any bearer token (registry.service.access.oidc).

GET /signin/oidc stores (state, nonce, PKCE verifier, next page) in a short-lived signed HttpOnly cookie
scoped to /signin/oidc and redirects to the issuer. Its callback checks `state` against that cookie,
redeems the code with the verifier at the token endpoint, verifies the ID token (signature, iss, aud =
the client id, exp, nonce) and opens a web session for `user:<sub>` (api/web/session.py: the same
server-side session and cookie as a key's sign-in, so sign-out ends it on the server). The groups the
token carried hold for the session (PEMREG_SESSION_MAX_AGE_SECONDS, 12 h by default); grants, admin
groups and the global role are read again on every page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from api.deps import base_registry, oidc_verifier
from registry.errors import Unauthenticated
from registry.service.access.identity import Access
from registry.service.access.oidc import OidcUnavailable
from registry.service.access.principals import remember

from .render import page
from .session import COOKIE, load_secret, safe_next, sessions_of

FLOW_COOKIE = "pemreg_oidc_flow"
FLOW_PATH = "/signin/oidc"
FLOW_SECONDS = 600  # a sign-in at the issuer must come back within this

router = APIRouter(include_in_schema=False)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _secret(request: Request) -> bytes:
    state = request.app.state
    if getattr(state, "sso_secret", None) is None:
        state.sso_secret = load_secret(base_registry(request).settings)
    secret: bytes = state.sso_secret
    return secret


def _seal(request: Request, purpose: str, data: dict[str, Any]) -> str:
    payload = _b64(json.dumps(data, separators=(",", ":")).encode())
    mac = _b64(hmac.new(_secret(request), f"{purpose}|{payload}".encode(), hashlib.sha256).digest())
    return f"{payload}.{mac}"


def _open(request: Request, purpose: str, sealed: str | None, max_age: float) -> dict[str, Any] | None:
    """The data of a cookie this server sealed for `purpose`, not older than `max_age`; else None."""
    if not sealed:
        return None
    payload, _, mac = sealed.partition(".")
    expected = _b64(hmac.new(_secret(request), f"{purpose}|{payload}".encode(), hashlib.sha256).digest())
    if not mac or not hmac.compare_digest(mac, expected):
        return None
    try:
        data = json.loads(_unb64(payload))
        issued = float(data["t"])
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(data, dict) or not 0 <= time.time() - issued <= max_age:
        return None
    return data


def _redirect_uri(request: Request) -> str:
    configured = base_registry(request).settings.oidc_redirect_url
    return configured or str(request.url_for("web_oidc_callback"))


def _frame(request: Request) -> dict[str, Any]:
    """The page frame of a signed-out visitor (as routes.chrome gives it)."""
    settings = base_registry(request).settings
    return {"caller": None, "csrf": "", "public_read": settings.public_read, "sso": sso_enabled(request)}


def sso_enabled(request: Request) -> bool:
    settings = base_registry(request).settings
    return bool(settings.oidc_issuer and settings.oidc_client_id)


@router.get(FLOW_PATH, name="web_oidc_start")
def start(request: Request, next: str | None = None) -> Response:
    verifier = oidc_verifier(request.app)
    settings = base_registry(request).settings
    if verifier is None or not settings.oidc_client_id:
        return page(request, "error.html", 404, message="single sign-on is not configured", **_frame(request))
    try:
        endpoint = str(verifier.metadata()["authorization_endpoint"])
    except (OidcUnavailable, KeyError):
        return page(
            request, "error.html", 502, message="the identity provider did not answer", **_frame(request)
        )
    state, nonce, code_verifier = (
        secrets.token_urlsafe(24),
        secrets.token_urlsafe(24),
        secrets.token_urlsafe(48),
    )
    challenge = _b64(hashlib.sha256(code_verifier.encode()).digest())
    query = urlencode(
        {
            "response_type": "code",
            "client_id": settings.oidc_client_id,
            "redirect_uri": _redirect_uri(request),
            "scope": settings.oidc_scopes,
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    response = RedirectResponse(f"{endpoint}{'&' if '?' in endpoint else '?'}{query}", status_code=303)
    flow = {"s": state, "n": nonce, "v": code_verifier, "next": safe_next(next), "t": time.time()}
    response.set_cookie(
        FLOW_COOKIE,
        _seal(request, "flow", flow),
        max_age=FLOW_SECONDS,
        httponly=True,
        samesite="lax",  # sent on the issuer's top-level redirect back to the callback
        secure=settings.session_cookie_secure or request.url.scheme == "https",
        path=FLOW_PATH,
    )
    return response


def _redeem(request: Request, code: str, code_verifier: str) -> dict[str, Any]:
    """The token endpoint's answer for this code (client_secret_post when a secret is configured)."""
    verifier = oidc_verifier(request.app)
    assert verifier is not None
    settings = base_registry(request).settings
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": _redirect_uri(request),
        "client_id": str(settings.oidc_client_id),
        "code_verifier": code_verifier,
    }
    if settings.oidc_client_secret:
        form["client_secret"] = settings.oidc_client_secret
    try:
        answer = httpx.post(
            str(verifier.metadata()["token_endpoint"]),
            data=form,
            timeout=settings.oidc_http_timeout_seconds,
            headers={"Accept": "application/json"},
        )
        body = answer.json()
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        raise OidcUnavailable(f"sign-in: the token endpoint did not answer ({type(exc).__name__})") from None
    if answer.status_code != 200 or not isinstance(body, dict) or not isinstance(body.get("id_token"), str):
        error = body.get("error") if isinstance(body, dict) else None
        raise Unauthenticated(
            f"sign-in: the issuer refused the code ({str(error or answer.status_code)[:60]})"
        )
    return body


@router.get(FLOW_PATH + "/callback", name="web_oidc_callback")
def callback(
    request: Request, code: str | None = None, state: str | None = None, error: str | None = None
) -> Response:
    settings = base_registry(request).settings
    flow = _open(request, "flow", request.cookies.get(FLOW_COOKIE), FLOW_SECONDS)
    try:
        if error:
            raise Unauthenticated(f"sign-in: the issuer answered {error[:60]!r}")
        if flow is None:
            raise Unauthenticated("sign-in: no sign-in in progress in this browser (or it took too long)")
        if not state or not hmac.compare_digest(state, str(flow["s"])):
            raise Unauthenticated("sign-in: state does not match this browser's sign-in")
        if not code:
            raise Unauthenticated("sign-in: the issuer sent no code")
        tokens = _redeem(request, code, str(flow["v"]))
        verifier = oidc_verifier(request.app)
        assert verifier is not None
        claims = verifier.verify(tokens["id_token"], audience=settings.oidc_client_id, nonce=str(flow["n"]))
        access: Access = verifier.access(claims)
    except Unauthenticated as exc:
        failed = page(request, "signin.html", 401, next="/", error=str(exc), **_frame(request))
        failed.delete_cookie(FLOW_COOKIE, path=FLOW_PATH)
        return failed
    base = base_registry(request)
    remember(base, access)
    response = RedirectResponse(safe_next(str(flow.get("next") or "/")), status_code=303)
    response.delete_cookie(FLOW_COOKIE, path=FLOW_PATH)
    response.set_cookie(
        COOKIE,
        sessions_of(request).issue(base, access),
        max_age=settings.session_max_age_seconds,
        httponly=True,
        samesite="lax",
        secure=settings.session_cookie_secure or request.url.scheme == "https",
        path="/",
    )
    return response
