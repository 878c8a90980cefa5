"""Principals after the request that named them: the access a stored principal has *now* (a run it
stored starts later: a schedule, a recomposition, a worker picking it up), and the SSO users seen.

A run acts as the principal who stored its spec, with that principal's grants when it starts:
- `key:<name>`: the key row it stored the work with (`api_key_id`) and that row's role now; a revoked
  key has none, and its runs refuse to start, saying so, even when a new key reuses the name (the new
  key holds the name's grants, but not the old key's stored work: docs/security.md).
- `user:<sub>`: the groups its last token carried (recorded by `remember`: the server holds no token
  of the user when the run starts), its global role from the current PEMREG_OIDC_* settings; refused
  once SSO is turned off.
- any other name: the operator (the CLI on the server's machine, the worker), an admin.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.catalog.upsert import insert_ignore
from registry.errors import PermissionDenied
from registry.service.access.identity import ANONYMOUS, KEY, USER, Access, kind_of
from registry.service.context import Registry
from registry.settings import Settings

# `remember` rewrites a user's row only when its groups changed or it is older than this: one write
# per user per interval, not one per request.
SEEN_EVERY = timedelta(minutes=10)


class PrincipalGone(PermissionDenied):
    """The principal that stored a run no longer has access (its key was revoked, SSO was removed)."""


def sso_access(settings: Settings, principal: str, groups: tuple[str, ...]) -> Access:
    """An SSO user's access: admin when one of its groups is in PEMREG_OIDC_ADMIN_GROUPS, else the
    configured default global role."""
    role = "admin" if settings.admin_groups & set(groups) else settings.oidc_default_role
    return Access(principal, role, tuple(sorted(set(groups))))


def stored_access(reg: Registry, principal: str, key_id: int | None = None) -> Access:
    """The access `principal` has now, for work it stored earlier (see the module docstring). For a key,
    `key_id` is the row it stored the work with."""
    with reg.sessions() as session:
        return access_now(session, reg.settings, principal, key_id)


def access_now(session: Session, settings: Settings, principal: str, key_id: int | None = None) -> Access:
    """`stored_access` in the caller's transaction (the outbox decides who receives an event inside the
    transaction of the change). A webhook records its owner's principal, not a key row: without
    `key_id`, a `key:` principal is the active key of that name."""
    if kind_of(principal) == KEY:
        return _key_access(session, principal, key_id)
    if kind_of(principal) == USER:
        _require_sso(settings, principal)
        groups = session.scalar(select(m.SsoUser.groups).where(m.SsoUser.principal == principal))
        if groups is None:
            raise PrincipalGone(f"{principal} has never signed in to this registry")
        return sso_access(settings, principal, tuple(groups))
    if kind_of(principal) == ANONYMOUS:
        raise PrincipalGone("anonymous cannot store work")
    return Access.operator(principal)


def check_current(reg: Registry) -> None:
    """`reg`'s principal may still act (the same rules as `stored_access`): a key's row is active, SSO is
    configured for a user, anonymous stores nothing. Part of every run's admission (authority.py)."""
    access = reg.acting
    if access.kind == KEY:
        with reg.sessions() as session:
            _key_access(session, access.principal, access.key_id)
    elif access.kind == USER:
        _require_sso(reg.settings, access.principal)
    elif access.kind == ANONYMOUS:
        raise PrincipalGone("anonymous cannot store work")


def acting_for(reg: Registry, principal: str, key_id: int | None = None) -> Registry:
    """`reg` acting as `principal` with its access now (PrincipalGone if it has none)."""
    return reg.acting_as(stored_access(reg, principal, key_id))


def _key_access(session: Session, principal: str, key_id: int | None) -> Access:
    """The key a `key:` principal used, now: its row by id (a newer key that reuses the name is another
    credential, and revives nothing of the old one's), or, without a row id, the active key of the name."""
    name = principal[len("key:") :]
    if key_id is not None:
        row = session.get(m.ApiKey, key_id)
        if row is None or row.name != name:
            raise PrincipalGone(f"{principal}: the key that stored this no longer exists")
    else:
        row = session.scalar(select(m.ApiKey).where(m.ApiKey.name == name, m.ApiKey.revoked_at.is_(None)))
    if row is None or row.revoked_at is not None:
        raise PrincipalGone(f"{principal} was revoked; what it stored no longer runs")
    return Access(principal, row.role, key_id=row.id)


def _require_sso(settings: Settings, principal: str) -> None:
    if not settings.oidc_issuer:
        raise PrincipalGone(f"{principal} is an SSO user and single sign-on is not configured")


def remember(reg: Registry, access: Access) -> None:
    """Record an SSO user's groups as of this request (for its runs that start later). A read when
    nothing changed; a write when its groups changed or its row is older than SEEN_EVERY."""
    now = m.utcnow()
    groups = sorted(access.groups)
    with reg.sessions() as session:
        row = session.get(m.SsoUser, access.principal)
        if (
            row is not None
            and list(row.groups or []) == groups
            and now - _aware(row.last_seen_at) <= SEEN_EVERY
        ):
            return
    with transaction(reg.sessions) as session:
        values = {"principal": access.principal, "groups": groups, "first_seen_at": now, "last_seen_at": now}
        if not insert_ignore(session, m.SsoUser, values, conflict=["principal"]):
            row = session.get_one(m.SsoUser, access.principal, with_for_update=True)
            row.groups, row.last_seen_at = groups, now


def _aware(stamp: datetime) -> datetime:
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)  # SQLite hands back naive UTC
