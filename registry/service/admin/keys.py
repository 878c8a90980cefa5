"""API keys: shown once at creation, stored as a hash, revocable. Roles: reader < writer < admin.

A name belongs to one active key at a time: once revoked, the name may be given to a new key. The old
row stays (revoked), and everything that key stored keeps pointing at that row, so a new key with the
same name never revives what the old one was allowed to do.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import func, select

from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from registry.service.catalog import audit
from registry.service.context import Principal, Registry

ROLES = ("reader", "writer", "admin")
KEY_PREFIX = "pemreg_"


@dataclass(frozen=True)
class ApiKeyIdentity:
    """An active key as authentication found it."""

    key_id: int
    name: str
    role: str
    key_hash: str

    @property
    def principal(self) -> Principal:
        return Principal(self.name, kind="key", key_id=self.key_id)


def _hash(secret: str) -> str:
    # Keys are 256-bit random tokens, so a fast hash is enough (no dictionary to brute-force).
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(reg: Registry, name: str, role: str) -> str:
    """Returns the secret; only its hash is stored."""
    if role not in ROLES:
        raise InvalidInput(f"role: must be one of {', '.join(ROLES)}", field="role")
    if not name.strip():
        raise InvalidInput("name: must not be empty", field="name")
    lookup = secrets.token_hex(4)
    secret = f"{KEY_PREFIX}{lookup}_{secrets.token_urlsafe(32)}"
    with transaction(reg.sessions) as session:
        taken = select(m.ApiKey).where(m.ApiKey.name == name, m.ApiKey.revoked_at.is_(None))
        if session.scalar(taken) is not None:
            raise Conflict(f"an active API key named {name!r} exists; revoke it or pick another name")
        session.add(
            m.ApiKey(name=name, role=role, prefix=lookup, key_hash=_hash(secret), created_by=reg.principal)
        )
        audit.record(session, reg.principal, "key_create", f"key:{name}", role=role)
    return secret


def revoke_key(reg: Registry, name: str) -> None:
    with transaction(reg.sessions) as session:
        row = session.scalar(select(m.ApiKey).where(m.ApiKey.name == name, m.ApiKey.revoked_at.is_(None)))
        if row is None:
            raise NotFound(f"no active API key named {name!r}")
        row.revoked_at = m.utcnow()
        audit.record(session, reg.principal, "key_revoke", f"key:{name}")


def count_keys(reg: Registry) -> int:
    with reg.sessions() as session:
        return session.scalar(select(func.count()).select_from(m.ApiKey)) or 0


def authenticate(reg: Registry, secret: str) -> ApiKeyIdentity:
    """The active key this secret belongs to, else Unauthenticated."""
    parts = secret.removeprefix(KEY_PREFIX).split("_", 1)
    if not secret.startswith(KEY_PREFIX) or len(parts) != 2:
        raise Unauthenticated("invalid API key")
    with reg.sessions() as session:
        rows = session.scalars(
            select(m.ApiKey).where(m.ApiKey.prefix == parts[0], m.ApiKey.revoked_at.is_(None))
        ).all()
    for row in rows:
        if hmac.compare_digest(row.key_hash, _hash(secret)):
            return ApiKeyIdentity(row.id, row.name, row.role, row.key_hash)
    raise Unauthenticated("invalid or revoked API key")


def key_status(reg: Registry, key_id: int) -> tuple[str, str | None] | None:
    """(role, revoked_at as ISO text or None) of a key row, None when there is no such row."""
    with reg.sessions() as session:
        row = session.get(m.ApiKey, key_id)
        if row is None:
            return None
        return row.role, row.revoked_at.isoformat(timespec="seconds") if row.revoked_at else None
