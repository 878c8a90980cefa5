"""Namespaces and grants: create, list, show, change; grant and revoke; who am I. Every change is one
transaction with its audit event, and holds the namespace row (FOR UPDATE) so that no write decided
under the old grants commits after it (policy.standing takes the same row FOR SHARE)."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.catalog.prepared.core import CoreReads
from registry.catalog.upsert import insert_ignore
from registry.errors import Conflict, InvalidInput, NotFound
from registry.failpoints import failpoint
from registry.refs import ALIAS_GLOB_RE, validate_namespace
from registry.service.access.identity import Access
from registry.service.access.namespace_reads import missing, namespace_shown
from registry.service.access.policy import (
    Standing,
    demand,
    readable,
    require_global,
    require_writable,
    standing,
)
from registry.service.catalog import audit
from registry.service.context import Registry
from registry.views import GrantView, NamespaceView

SUBJECT_RE = re.compile(r"^(key|user|group):[^\x00-\x1f\x7f]{1,200}$")
# Protected alias globs: alias characters plus fnmatch's * ? [ ] !
MAX_PATTERNS = 32
MAX_DESCRIPTION = 4096


def validate_subject(subject: str) -> str:
    if not isinstance(subject, str) or not SUBJECT_RE.fullmatch(subject):
        raise InvalidInput(
            f"subject: {subject!r:.100} is not key:<name>, user:<sub> or group:<name>", field="subject"
        )
    return subject


def validate_role(role: str) -> str:
    if role not in m.NAMESPACE_ROLES:
        raise InvalidInput(f"role: must be one of {', '.join(m.NAMESPACE_ROLES)}", field="role")
    return role


def validate_visibility(visibility: str) -> str:
    if visibility not in m.NAMESPACE_VISIBILITIES:
        raise InvalidInput(
            f"visibility: must be one of {', '.join(m.NAMESPACE_VISIBILITIES)}", field="visibility"
        )
    return visibility


def validate_patterns(patterns: list[str]) -> list[str]:
    if not isinstance(patterns, list) or len(patterns) > MAX_PATTERNS:
        raise InvalidInput(
            f"protected_aliases: a list of at most {MAX_PATTERNS} patterns", field="protected_aliases"
        )
    for pattern in patterns:
        if not isinstance(pattern, str) or not ALIAS_GLOB_RE.fullmatch(pattern):
            raise InvalidInput(
                f"protected_aliases: {pattern!r:.80} is not an alias glob (e.g. prod, release-*)",
                field="protected_aliases",
            )
    return sorted(set(patterns))


def _check_description(description: str | None) -> None:
    if description is not None and len(description) > MAX_DESCRIPTION:
        raise InvalidInput(f"description: at most {MAX_DESCRIPTION} characters", field="description")


def _row(session: Session, namespace: str, *, lock: bool = False) -> m.Namespace | None:
    query = select(m.Namespace).where(m.Namespace.name == namespace)
    if lock:
        query = query.with_for_update()
    return session.scalar(query.execution_options(populate_existing=True))


# ---- written into: created on first use --------------------------------------------------------------


def ensure_namespace(
    reg: Registry, session: Session, namespace: str, *, action: str, subject: str, create: bool = True
) -> Standing:
    """Demand write access to the namespace a write goes into (row locked FOR SHARE until the caller's
    transaction ends), creating the namespace first when there is none (`create`; without it, only
    the check is made). Creating takes the global writer role, as registering into a new namespace
    always did. A namespace created `private` (PEMREG_DEFAULT_VISIBILITY) makes its non-admin creator
    its maintainer, else nobody but admins could see what was just written.

    The decision is `policy.require_writable`."""
    validate_namespace(namespace)
    access = reg.acting
    st = require_writable(session, access, namespace, action=action, subject=subject)
    if st.exists or not create:
        return st
    visibility = reg.settings.default_visibility
    if insert_ignore(
        session,
        m.Namespace,
        {
            "name": namespace,
            "visibility": visibility,
            "protected_aliases": [],
            "created_by": access.principal,
            "created_at": m.utcnow(),
            "updated_at": m.utcnow(),
        },
        conflict=["name"],
    ):
        owner = visibility == "private" and not access.is_admin
        if owner:
            session.add(
                m.NamespaceGrant(
                    namespace=namespace,
                    subject=access.principal,
                    role="maintainer",
                    granted_by=access.principal,
                )
            )
        audit.record(
            session,
            access.principal,
            "namespace_create",
            namespace,
            namespace=namespace,
            visibility=visibility,
            by=action,
            **({"maintainer": access.principal} if owner else {}),
        )
        session.flush()
    # Created now, or by a concurrent first write: decided again on the row as it is.
    return ensure_namespace(reg, session, namespace, action=action, subject=subject, create=False)


# ---- reads -------------------------------------------------------------------------------------------


def protected_patterns(reg: Registry, namespaces: list[str]) -> dict[str, list[str]]:
    """namespace -> its protected alias globs, for the readable ones among `namespaces` (the web page
    marks protected aliases with them)."""
    with reg.sessions() as session:
        rows = session.execute(
            select(m.Namespace.name, m.Namespace.protected_aliases).where(
                m.Namespace.name.in_(set(namespaces)), readable(reg.acting, m.Namespace.name)
            )
        ).all()
    return {name: list(patterns or []) for name, patterns in rows}


# ---- changes -----------------------------------------------------------------------------------------


def create_namespace(
    reg: Registry,
    namespace: str,
    *,
    visibility: str | None = None,
    protected_aliases: list[str] | None = None,
    description: str | None = None,
) -> NamespaceView:
    """Admin. 409 if it exists (a namespace created by a first write can be changed with `update`)."""
    validate_namespace(namespace, "name")
    visibility = validate_visibility(visibility or reg.settings.default_visibility)
    patterns = validate_patterns(protected_aliases or [])
    _check_description(description)
    access = reg.acting
    require_global(access, "admin", action="namespace_create", subject=namespace)
    with transaction(reg.sessions) as session:
        created = insert_ignore(
            session,
            m.Namespace,
            {
                "name": namespace,
                "visibility": visibility,
                "protected_aliases": patterns,
                "description": description or None,
                "created_by": access.principal,
                "created_at": m.utcnow(),
                "updated_at": m.utcnow(),
            },
            conflict=["name"],
        )
        if not created:
            raise Conflict(f"namespace {namespace} exists; change it with PATCH / `pemreg namespaces set`")
        audit.record(
            session,
            access.principal,
            "namespace_create",
            namespace,
            namespace=namespace,
            visibility=visibility,
            protected_aliases=patterns,
        )
    with reg.sessions() as session:  # read back on the write path: no read session needed
        return namespace_shown(CoreReads(session), reg.acting, namespace)


def update_namespace(
    reg: Registry,
    namespace: str,
    *,
    visibility: str | None = None,
    protected_aliases: list[str] | None = None,
    description: str | None = None,
) -> NamespaceView:
    """Maintainer. Each field given replaces the old value; each change is its own audit event."""
    validate_namespace(namespace)
    if visibility is not None:
        validate_visibility(visibility)
    patterns = validate_patterns(protected_aliases) if protected_aliases is not None else None
    _check_description(description)
    access = reg.acting
    with transaction(reg.sessions) as session:
        row = _row(session, namespace, lock=True)
        if row is None:
            raise NotFound(missing(namespace))
        st = standing(session, access, namespace)
        demand(
            access,
            st,
            "maintainer",
            action="namespace_update",
            subject=namespace,
            missing=missing(namespace),
        )
        if visibility is not None and visibility != row.visibility:
            audit.record(
                session,
                access.principal,
                "namespace_visibility",
                namespace,
                namespace=namespace,
                from_visibility=row.visibility,
                to_visibility=visibility,
            )
            row.visibility = visibility
        if patterns is not None and patterns != sorted(row.protected_aliases or []):
            audit.record(
                session,
                access.principal,
                "namespace_protection",
                namespace,
                namespace=namespace,
                from_patterns=list(row.protected_aliases or []),
                to_patterns=patterns,
            )
            row.protected_aliases = patterns
        if description is not None and (row.description or "") != description:
            audit.record(
                session,
                access.principal,
                "namespace_describe",
                namespace,
                namespace=namespace,
                description=description,
            )
            row.description = description or None
        row.updated_at = m.utcnow()
    with reg.sessions() as session:  # read back on the write path: no read session needed
        return namespace_shown(CoreReads(session), reg.acting, namespace)


def _lock_as_maintainer(session: Session, access: Access, namespace: str, action: str, subject: str) -> None:
    """Lock the namespace's row (a grant change waits for writes decided before it, and the reverse)
    and demand its maintainer (or admin); a namespace the caller cannot see is missing, as any other."""
    if _row(session, namespace, lock=True) is None:
        raise NotFound(missing(namespace))
    demand(
        access,
        standing(session, access, namespace),
        "maintainer",
        action=action,
        subject=f"{namespace} {subject}",
        missing=missing(namespace),
    )


def set_grant(reg: Registry, namespace: str, subject: str, role: str) -> GrantView:
    """Maintainer (or admin): give `subject` `role` in the namespace, replacing its previous role."""
    validate_namespace(namespace)
    validate_subject(subject)
    validate_role(role)
    access = reg.acting
    with transaction(reg.sessions) as session:
        _lock_as_maintainer(session, access, namespace, "grant_set", subject)
        grant = session.get(m.NamespaceGrant, (namespace, subject))
        previous = grant.role if grant else None
        if grant is None:
            grant = m.NamespaceGrant(
                namespace=namespace, subject=subject, role=role, granted_by=access.principal
            )
            session.add(grant)
        elif previous != role:
            grant.role, grant.granted_by, grant.granted_at = role, access.principal, m.utcnow()
        if previous != role:
            audit.record(
                session,
                access.principal,
                "grant_set",
                namespace,
                namespace=namespace,
                grantee=subject,
                from_role=previous,
                to_role=role,
            )
        session.flush()
        failpoint("grant_change")  # crash tests: killed here, the change is rolled back whole
        return GrantView(
            namespace=namespace,
            subject=subject,
            role=grant.role,
            granted_by=grant.granted_by,
            granted_at=grant.granted_at,
        )


def revoke_grant(reg: Registry, namespace: str, subject: str) -> None:
    """Maintainer (or admin). The namespace's last grant gone, it is unowned again: global roles apply."""
    validate_namespace(namespace)
    validate_subject(subject)
    access = reg.acting
    with transaction(reg.sessions) as session:
        _lock_as_maintainer(session, access, namespace, "grant_revoke", subject)
        grant = session.get(m.NamespaceGrant, (namespace, subject))
        if grant is None:
            raise NotFound(f"{subject} has no grant in namespace {namespace}")
        audit.record(
            session,
            access.principal,
            "grant_revoke",
            namespace,
            namespace=namespace,
            grantee=subject,
            from_role=grant.role,
        )
        session.delete(grant)
        session.flush()
        failpoint("grant_change")
