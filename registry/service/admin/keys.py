"""API keys: shown once at creation, stored as a hash, revocable. Roles: reader < writer < admin.

A key acts as the principal `key:<name>`. A name belongs to one active key at a time: once revoked, the
name may be given to a new key, which is the same principal (the namespace grants naming `key:<name>`
hold for it). The old row stays (revoked), and the runs, schedules and web sessions that key stored
keep pointing at that row, so they stay stopped: the new key is a new credential, not the old one back.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import func, select

from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from registry.service.access.identity import Access
from registry.service.catalog import audit
from registry.service.context import Registry

ROLES = ("reader", "writer", "admin")
KEY_PREFIX = "pemreg_"
MAX_KEY_NAME = 100


def _hash(secret: str) -> str:
    # Keys are 256-bit random tokens, so a fast hash is enough (no dictionary to brute-force).
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(reg: Registry, name: str, role: str) -> str:
    """Returns the secret; only its hash is stored."""
    if role not in ROLES:
        raise InvalidInput(f"role: must be one of {', '.join(ROLES)}", field="role")
    if not name.strip():
        raise InvalidInput("name: must not be empty", field="name")
    if len(name) > MAX_KEY_NAME:  # its principal key:<name> fits the catalog's actor columns
        raise InvalidInput(f"name: at most {MAX_KEY_NAME} characters", field="name")
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


def key_access(row: m.ApiKey) -> Access:
    """What a key row acts as: `key:<name>` with its role, tied to this row."""
    return Access(f"key:{row.name}", row.role, key_id=row.id)


def authenticate(reg: Registry, secret: str) -> Access:
    """The access of the active key this secret belongs to, else Unauthenticated."""
    parts = secret.removeprefix(KEY_PREFIX).split("_", 1)
    if not secret.startswith(KEY_PREFIX) or len(parts) != 2:
        raise Unauthenticated("invalid API key")
    with reg.sessions() as session:
        rows = session.scalars(
            select(m.ApiKey).where(m.ApiKey.prefix == parts[0], m.ApiKey.revoked_at.is_(None))
        ).all()
    for row in rows:
        if hmac.compare_digest(row.key_hash, _hash(secret)):
            return key_access(row)
    raise Unauthenticated("invalid or revoked API key")
