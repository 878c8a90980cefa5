"""API keys: shown once at creation, stored as a hash, revocable. Roles: reader < writer < admin.

A key acts as the principal `key:<name>`. A name belongs to one active key at a time: once revoked, the
name may be given to a new key, which is the same principal (the namespace grants naming `key:<name>`
hold for it). The old row stays (revoked), and the runs, schedules and web sessions that key stored
keep pointing at that row, so they stay stopped: the new key is a new credential, not the old one back.

Authentication remembers an accepted key for at most KEY_CACHE_SECONDS (per process), so a burst of
requests with one key costs one catalog lookup, not one each. A revocation therefore takes effect
within that bound everywhere (at once in the process that revoked it, which forgets what it knew).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from typing import Any

from sqlalchemy import func, select

from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from registry.service.access.identity import Access
from registry.service.admin.key_reads import active_keys
from registry.service.catalog import audit
from registry.service.context import Registry

ROLES = ("reader", "writer", "admin")
KEY_PREFIX = "pemreg_"
MAX_KEY_NAME = 100
# How long an accepted key is trusted without asking the catalog again: the bound on how late a
# revocation takes effect (docs/security.md). Only acceptances are remembered, never refusals.
KEY_CACHE_SECONDS = 1.0
_CACHE_ENTRIES = 4096  # distinct keys remembered at once; beyond, the oldest half is dropped
_accepted: dict[tuple[str, str], tuple[float, Access]] = {}
_accepted_lock = threading.Lock()


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
    forget_accepted_keys()


def forget_accepted_keys() -> None:
    """Drop every remembered acceptance (a revocation in this process holds from the next request)."""
    with _accepted_lock:
        _accepted.clear()


def count_keys(reg: Registry) -> int:
    with reg.sessions() as session:
        return session.scalar(select(func.count()).select_from(m.ApiKey)) or 0


def key_access(row: m.ApiKey | Any) -> Access:
    """What a key row (ORM object or Core row) acts as: `key:<name>` with its role, tied to this row."""
    return Access(f"key:{row.name}", row.role, key_id=row.id)


def remembered(reg: Registry, secret: str) -> Access | None:
    """The access of this secret if the catalog accepted it less than KEY_CACHE_SECONDS ago, else None:
    no I/O, so the server decides on its event loop whether `authenticate` needs the catalog."""
    return _remembered(reg, _hash(secret), time.monotonic())


def _remembered(reg: Registry, digest: str, now: float) -> Access | None:
    with _accepted_lock:
        hit = _accepted.get((reg.settings.resolved_database_url, digest))
    return hit[1] if hit is not None and now - hit[0] < KEY_CACHE_SECONDS else None


def authenticate(reg: Registry, secret: str) -> Access:
    """The access of the active key this secret belongs to, else Unauthenticated. An acceptance read
    from the catalog less than KEY_CACHE_SECONDS ago is reused."""
    parts = secret.removeprefix(KEY_PREFIX).split("_", 1)
    if not secret.startswith(KEY_PREFIX) or len(parts) != 2:
        raise Unauthenticated("invalid API key")
    digest = _hash(secret)
    slot = (reg.settings.resolved_database_url, digest)
    now = time.monotonic()
    hit = _remembered(reg, digest, now)
    if hit is not None:
        return hit
    for row in active_keys(reg, parts[0]):
        if hmac.compare_digest(row.key_hash, digest):
            access = key_access(row)
            with _accepted_lock:
                if len(_accepted) >= _CACHE_ENTRIES:
                    for old in sorted(_accepted, key=lambda k: _accepted[k][0])[: _CACHE_ENTRIES // 2]:
                        del _accepted[old]
                _accepted[slot] = (now, access)  # `now`: read before the lookup, so never trusted longer
            return access
    with _accepted_lock:
        _accepted.pop(slot, None)
    raise Unauthenticated("invalid or revoked API key")
