"""Web sessions on the server: one row per sign-in, ended by sign-out, expiry or the key's revocation.

The browser holds a random token (in a signed cookie); the catalog holds only its sha256. A cookie is
worth something only while its row is open and its key active, so sign-out ends it everywhere, even
for a copy of the cookie taken before.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import delete, select

from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.service.admin.keys import ApiKeyIdentity
from registry.service.context import Registry


def _id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(reg: Registry, key: ApiKeyIdentity, max_age_seconds: float) -> str:
    """A new session for `key`; returns the token the cookie carries."""
    token = secrets.token_urlsafe(32)
    now = m.utcnow()
    with transaction(reg.sessions) as session:
        session.add(
            m.WebSession(
                id=_id(token),
                api_key_id=key.key_id,
                created_at=now,
                expires_at=now + timedelta(seconds=max_age_seconds),
            )
        )
    return token


def session_key(reg: Registry, token: str) -> ApiKeyIdentity | None:
    """The active key of an open, unexpired session; None otherwise."""
    query = (
        select(m.ApiKey)
        .join(m.WebSession, m.WebSession.api_key_id == m.ApiKey.id)
        .where(
            m.WebSession.id == _id(token),
            m.WebSession.revoked_at.is_(None),
            m.WebSession.expires_at > m.utcnow(),
            m.ApiKey.revoked_at.is_(None),
        )
    )
    with reg.sessions() as session:
        row = session.scalar(query)
        return ApiKeyIdentity(row.id, row.name, row.role, row.key_hash) if row is not None else None


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
