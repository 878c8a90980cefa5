"""Web sign-in: a signed, HttpOnly, SameSite session cookie, checked against the catalog on every request.

One cookie for both ways in (an API key at /signin, single sign-on at /signin/oidc, api/web/oidc.py).
It holds a random session token and the issue time, signed with HMAC-SHA256; never the key or a
token of the issuer. The catalog keeps the session (registry/service/admin/sessions.py): each request
finds it open (and its key active, or SSO still configured), so sign-out ends the session on the
server (a copy of the cookie replayed later is refused), and revoking a key ends every session made
with it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request

from api.deps import Caller, base_registry
from registry.service import Registry
from registry.service.access.identity import Access
from registry.service.admin.sessions import close_session, open_session, session_access
from registry.settings import Settings

COOKIE = "pemreg_session"
ANONYMOUS = "anonymous"
SECRET_FILE = "web-session-secret"


class SignInRequired(Exception):
    """No valid session and anonymous read is off: pages answer with a redirect to /signin."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_secret(settings: Settings) -> bytes:
    """PEMREG_SESSION_SECRET, else a random secret kept (mode 0600) in PEMREG_HOME across restarts."""
    if settings.session_secret:
        return settings.session_secret.encode()
    path = Path(settings.home) / SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # Written whole to a temporary file, then linked into place: a second worker starting at the
        # same moment either wins the link or reads the complete winner, never a half-written file.
        tmp = path.with_name(f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48) + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    value = path.read_text().strip()
    if len(value) < 32:
        raise RuntimeError(f"{path}: session secret is too short; delete it to regenerate")
    return value.encode()


@dataclass(frozen=True)
class Sessions:
    secret: bytes
    max_age: int

    def _mac(self, *parts: str) -> str:
        return _b64(hmac.new(self.secret, "|".join(parts).encode(), hashlib.sha256).digest())

    def issue(self, reg: Registry, access: Access) -> str:
        """A new server-side session for a key or an SSO user, and the signed cookie value naming it."""
        token = open_session(reg, access, self.max_age)
        payload = _b64(json.dumps({"s": token, "t": int(time.time())}).encode())
        return f"{payload}.{self._mac('session', payload)}"

    def read(self, cookie: str) -> str | None:
        """The session token of a cookie this server signed and that has not expired."""
        payload, _, mac = cookie.partition(".")
        if not mac or not hmac.compare_digest(mac, self._mac("session", payload)):
            return None
        try:
            data = json.loads(_unb64(payload))
            token, issued = str(data["s"]), int(data["t"])
        except (ValueError, KeyError, TypeError):
            return None
        if not 0 <= time.time() - issued <= self.max_age:
            return None
        return token

    def end(self, reg: Registry, cookie: str) -> None:
        token = self.read(cookie)
        if token is not None:
            close_session(reg, token)

    def csrf_token(self, cookie: str) -> str:
        """Bound to one session cookie: a page of another site cannot know it."""
        return self._mac("csrf", cookie)


def sessions_of(request: Request) -> Sessions:
    state = request.app.state
    if getattr(state, "web_sessions", None) is None:
        settings = base_registry(request).settings
        state.web_sessions = Sessions(load_secret(settings), settings.session_max_age_seconds)
    return state.web_sessions


def signed_in(request: Request) -> Caller | None:
    """The caller of an open session (its key still active, or SSO still configured), else None."""
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return None
    token = sessions_of(request).read(cookie)
    if token is None:
        return None
    base: Registry = base_registry(request)
    access = session_access(base, token)
    if access is None:
        return None
    request.state.principal = access.principal
    return Caller(name=access.principal, role=access.role, reg=base.acting_as(access))


def web_caller(request: Request) -> Caller:
    """Dependency of every page: the signed-in key or SSO user, or an anonymous reader when
    PEMREG_PUBLIC_READ."""
    caller = signed_in(request)
    if caller is None:
        base = base_registry(request)
        if not base.settings.public_read:
            raise SignInRequired()
        # Reads what every signed-in principal reads (internal namespaces), nothing a grant gives.
        caller = Caller(name=ANONYMOUS, role="reader", reg=base.acting_as(Access(ANONYMOUS, "reader")))
    request.state.web_caller = caller
    return caller


def safe_next(target: str | None) -> str:
    """Only a path on this site: never `//host`, a scheme, or a backslash trick."""
    if (
        not target
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target)  # browsers drop tabs: "/\t/host"
    ):
        return "/"
    return target


def same_origin(request: Request) -> bool:
    """Browsers send Origin on cross-site POSTs; a form of another site is refused."""
    origin = request.headers.get("origin")
    return origin is None or origin == f"{request.url.scheme}://{request.headers.get('host', '')}"
