"""Web sessions on the server: one row per sign-in (by API key, or through single sign-on), ended by
sign-out, expiry, or the key's revocation.

The browser holds a random token (in a signed cookie); the catalog holds only its sha256. A cookie is
worth something only while its row is open, so sign-out ends it everywhere, even for a copy of the
cookie taken before. A key session is tied to the key's row: it ends when that key is revoked, and a
new key reusing the name revives none of the old key's sessions. An SSO session keeps the groups the
ID token carried; its global role follows the PEMREG_OIDC_* settings on every request, and it ends
when single sign-on is turned off.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import delete, select

from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.service.access.identity import KEY, USER, Access
from registry.service.access.principals import sso_access
from registry.service.admin.keys import key_access
from registry.service.context import Registry


def _id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(reg: Registry, access: Access, max_age_seconds: float) -> str:
    """A new session for a key (`access.key_id`) or an SSO user (`access.groups`); returns the token
    the cookie carries."""
    if access.kind not in (KEY, USER) or (access.kind == KEY) != (access.key_id is not None):
        raise ValueError(f"no web session for {access.principal}")  # a bug, never a request's doing
    token = secrets.token_urlsafe(32)
    now = m.utcnow()
    with transaction(reg.sessions) as session:
        session.add(
            m.WebSession(
                id=_id(token),
                principal=access.principal,
                api_key_id=access.key_id,
                groups=list(access.groups) if access.kind == USER else [],
                created_at=now,
                expires_at=now + timedelta(seconds=max_age_seconds),
            )
        )
    return token


def session_access(reg: Registry, token: str) -> Access | None:
    """Who an open, unexpired session acts as now: its key while that key row is active, or its SSO
    user while single sign-on is configured; None otherwise."""
    with reg.sessions() as session:
        row = session.scalar(
            select(m.WebSession).where(
                m.WebSession.id == _id(token),
                m.WebSession.revoked_at.is_(None),
                m.WebSession.expires_at > m.utcnow(),
            )
        )
        if row is None:
            return None
        if row.api_key_id is not None:
            key = session.get(m.ApiKey, row.api_key_id)
            return key_access(key) if key is not None and key.revoked_at is None else None
        principal, groups = row.principal, tuple(str(g) for g in row.groups or ())
    if not reg.settings.oidc_issuer:
        return None
    return sso_access(reg.settings, principal, groups)


def close_session(reg: Registry, token: str) -> bool:
    """Sign-out: the session ends on the server. False when it was not open."""
    with transaction(reg.sessions) as session:
        row = session.get(m.WebSession, _id(token), with_for_update=True)
        if row is None or row.revoked_at is not None:
            return False
        row.revoked_at = m.utcnow()
        return True


def prune_sessions(reg: Registry) -> int:
    """Rows of sessions that expired (they refuse their cookie anyway); `pemreg gc` calls it."""
    with transaction(reg.sessions) as session:
        result = session.execute(delete(m.WebSession).where(m.WebSession.expires_at <= m.utcnow()))
        return int(getattr(result, "rowcount", 0) or 0)
