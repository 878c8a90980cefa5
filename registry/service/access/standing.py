"""The policy's rule on what was read, and the values its in-query form binds: no SQLAlchemy here, so the
CLI's local reads (which run compiled statements, registry.catalog.prepared) decide by the same rule as
registry.service.access.policy, which re-exports all of this."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from registry.catalog.prepared.statement import ReadConnection, ReadStatement
from registry.service.access.identity import Access

RANK = {"reader": 1, "writer": 2, "maintainer": 3, "admin": 4}
Grants = tuple[tuple[str, str], ...]  # (subject, role) of the grants naming a principal in one namespace
# The bound parameter that carries the principal's subjects into a statement built once per shape
# (policy.readable_bound).
SUBJECTS = "policy_subjects"

_STATEMENTS = "registry.service.access.namespace_statements"
NAMESPACE = ReadStatement(f"{_STATEMENTS}:namespace")
HELD = ReadStatement(f"{_STATEMENTS}:held")
OWNED = ReadStatement(f"{_STATEMENTS}:owned")


@dataclass(frozen=True)
class Standing:
    """A principal's role in one namespace, and why."""

    namespace: str
    exists: bool
    visibility: str | None = None
    protected_aliases: tuple[str, ...] = ()
    role: str | None = None  # reader | writer | maintainer | admin | None (sees nothing)
    via: str = "none"  # the grant's subject, "internal", "global role", "admin" or "none"
    owned: bool = False
    grants: tuple[tuple[str, str], ...] = field(
        default=(), repr=False
    )  # (subject, role) naming the principal

    @property
    def rank(self) -> int:
        return RANK.get(self.role or "", 0)


def bound(access: Access) -> dict[str, Any]:
    """The parameters `readable_bound(access.is_admin, ...)` needs at execution."""
    return {} if access.is_admin else {SUBJECTS: list(access.subjects)}


def standing_of(
    access: Access,
    namespace: str,
    row: Any,  # an ORM Namespace or a row of namespaces; None: no such namespace
    grants: Grants,
    owned: bool,
) -> Standing:
    """The rule itself, on what was read: the namespace row (ORM or Core; None: no such namespace), the
    grants naming `access` (subject, role), and whether the namespace has any grant at all."""
    if row is None:
        return (
            Standing(namespace, False, role="admin", via="admin")
            if access.is_admin
            else Standing(namespace, False)
        )
    base = Standing(
        namespace,
        True,
        visibility=row.visibility,
        protected_aliases=tuple(row.protected_aliases or ()),
        owned=owned,
        grants=grants,
    )
    if access.is_admin:
        return replace(base, role="admin", via="admin")
    if grants:
        subject, role = max(grants, key=lambda g: RANK[g[1]])
        return replace(base, role=role, via=subject)
    if row.visibility != "internal":
        return base
    if owned:
        return replace(base, role="reader", via="internal")
    return replace(base, role="writer" if access.role == "writer" else "reader", via="global role")


def standing_read(db: ReadConnection, access: Access, namespace: str) -> tuple[Any, Standing]:
    """The namespace's row (None: no such namespace) and `access`'s role in it: the readers' path
    (`pemreg namespaces show`), by the same rule as policy.standing, which writers lock the row for."""
    found = db.rows(NAMESPACE, None, {"namespace": namespace})
    if not found:
        return None, standing_of(access, namespace, None, (), False)
    return found[0], standing_of(access, namespace, found[0], *held(db, access, namespace))


def held(db: ReadConnection, access: Access, namespace: str) -> tuple[Grants, bool]:
    """What `standing_of` reads besides the row: the grants naming `access` in `namespace` (subject,
    role), and whether the namespace has any grant at all (owned). The same two statements for an ORM
    session (CoreReads) and a read connection."""
    found = db.rows(HELD, len(access.subjects), {"namespace": namespace, **subject_values(access)})
    grants = tuple((subject, role) for subject, role in found)
    owned = bool(grants) or bool(db.rows(OWNED, None, {"namespace": namespace})[0].owned)
    return grants, owned


def subject_values(access: Access) -> dict[str, str]:
    """A principal's subjects as the statements of namespace_statements bind them, one by one."""
    return {f"subject_{i}": subject for i, subject in enumerate(access.subjects)}
