"""The one authorization policy: what a principal may read and change in which namespace.

Every door asks it: the REST routes and the web page through the service functions they call, the CLI,
and the run lifecycle when a run starts (as the principal who stored its spec). The rules (the product
contract, section 6a):

- global `admin`: everything everywhere.
- a namespace's role for a principal is the highest of its grants, direct or through its groups
  (reader < writer < maintainer);
- no grant naming it: `reader` if the namespace is `internal` and owned (has grants), the principal's
  global role (reader / writer) if it is `internal` and unowned (no grants at all: how every namespace
  of a deployment older than namespaces behaves), nothing if it is `private`.

Reads of many rows are decided inside their query: `readable(access, column)` is a SQL expression over
a namespace column, composable with any Core or ORM select (no fetch-then-filter, so nothing private
leaks by count or page token). One namespace's decision (`standing`) reads its row and the grants
naming the principal, in the caller's transaction; writers lock the row (FOR SHARE), and grant changes
lock it FOR UPDATE, so a write is decided and committed either wholly before or wholly after a grant
change: nothing caches a grant, a revocation holds from the next statement on.

The two forms agree by construction (`readable` is `standing(...).role is not None`, `maintained` is
`standing(...).rank >= maintainer`); a test feeds both the same table of principals and namespaces.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import BindParameter, ColumnElement, Select, and_, bindparam, exists, or_, select, true

from registry.catalog import tables as t
from registry.catalog.prepared.core import CoreReads
from registry.errors import NotFound, PermissionDenied
from registry.service.access.identity import Access
from registry.service.access.standing import RANK as RANK
from registry.service.access.standing import SUBJECTS as SUBJECTS
from registry.service.access.standing import Grants as Grants
from registry.service.access.standing import Standing as Standing
from registry.service.access.standing import bound as bound
from registry.service.access.standing import held as held
from registry.service.access.standing import standing_of as standing_of
from registry.service.access.standing import standing_read as standing_read

if TYPE_CHECKING:  # the in-query rules are Core: the CLI's catalog reads use them without the ORM
    from sqlalchemy.orm import QueryableAttribute, Session


NAMESPACE_ROLES = t.NAMESPACE_ROLES
_ns, _grant = t.namespaces.c, t.namespace_grants.c


@dataclass(frozen=True)
class Refusal:
    """What the audit log records of a refused write: who, what (action, subject), why."""

    principal: str
    action: str
    subject: str
    namespace: str | None
    needs: str
    has: str | None
    why: str


class Refused(PermissionDenied):
    """A write the principal's role does not allow (HTTP 403); the shells audit `refusal`."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.why)
        self.refusal = refusal


class RefusedUnseen(NotFound):
    """A write into a namespace the principal cannot see: answered exactly as a missing object (404),
    and still audited (the event belongs to that namespace, so only its members read it)."""

    def __init__(self, message: str, refusal: Refusal) -> None:
        super().__init__(message)
        self.refusal = refusal


# ---- reads inside the query --------------------------------------------------------------------------


def visible_namespaces(access: Access) -> Select[tuple[str]]:
    """Names of the namespaces `access` may read: internal ones, and those granting it any role."""
    return _visible(access.subjects)


def _visible(subjects: tuple[str, ...] | BindParameter[Any]) -> Select[tuple[str]]:
    granted = select(_grant.namespace).where(_grant.subject.in_(subjects))
    return select(_ns.name).where(or_(_ns.visibility == "internal", _ns.name.in_(granted)))


def readable(access: Access, column: ColumnElement[Any] | QueryableAttribute[Any]) -> ColumnElement[bool]:
    """True where `column` (a namespace) is readable by `access`: a WHERE clause for any select.
    A namespace without a row is not readable (only admins see past it)."""
    if access.is_admin:
        return true()
    return column.in_(visible_namespaces(access))


def readable_bound(admin: bool, column: ColumnElement[Any]) -> ColumnElement[bool]:
    """`readable` for a statement built once and executed for many principals (the catalog's hot reads
    keep theirs per shape: building and hashing a statement costs about as much CPU as running it). The
    principal's subjects are the bound parameter SUBJECTS: execute with `bound(access)`."""
    if admin:
        return true()
    return column.in_(_visible(bindparam(SUBJECTS, expanding=True)))


def maintained(access: Access, column: ColumnElement[Any] | QueryableAttribute[Any]) -> ColumnElement[bool]:
    """True where `column` (a namespace) is one `access` maintains (what a namespace's webhooks need):
    the in-query form of `standing(...).rank >= RANK["maintainer"]`, so a listing of them is filtered
    in its query. Only a maintainer grant (direct or through a group) gives it; NULL is admins' only."""
    if access.is_admin:
        return true()
    return column.in_(select(_grant.namespace).where(_maintainer_grant(access)))


def _maintainer_grant(access: Access) -> ColumnElement[bool]:
    return and_(_grant.subject.in_(access.subjects), _grant.role == "maintainer")


def run_visible(access: Access) -> ColumnElement[bool]:
    """A composition run is visible to whoever may read its output's namespace and every input's: its
    spec names them all."""
    if access.is_admin:
        return true()
    from registry.catalog import models as m  # runs are read through the ORM

    c, cn = m.Composition, m.CompositionNamespace
    return and_(
        readable(access, c.namespace),
        ~exists().where(cn.composition_id == c.id, ~readable(access, cn.namespace)),
    )


# ---- one namespace -----------------------------------------------------------------------------------


def standing(session: Session, access: Access, namespace: str, *, lock: bool = False) -> Standing:
    """`access`'s role in `namespace`. `lock` holds the namespace row (FOR SHARE) until the caller's
    transaction ends, so no grant change interleaves with the write it authorises."""
    from registry.catalog import models as m  # writers' path: the row joins the session's identity map

    query = select(m.Namespace).where(m.Namespace.name == namespace)
    if lock:
        query = query.with_for_update(read=True)
    row = session.scalar(query.execution_options(populate_existing=True))
    if row is None:
        return standing_of(access, namespace, None, (), False)
    return standing_of(access, namespace, row, *held(CoreReads(session), access, namespace))


def matches_protected(patterns: tuple[str, ...] | list[str], alias: str) -> bool:
    """Whether `alias` is protected by one of a namespace's glob patterns (`prod`, `release-*`)."""
    return any(fnmatch.fnmatchcase(alias, pattern) for pattern in patterns)


def is_protected(st: Standing, alias: str) -> bool:
    return matches_protected(st.protected_aliases, alias)


def alias_needs(st: Standing, alias: str) -> str:
    """Moving or deleting `alias`: maintainer when it matches a protected pattern, else writer."""
    return "maintainer" if is_protected(st, alias) else "writer"


def demand(
    access: Access, st: Standing, needs: str, *, action: str, subject: str, missing: str | None = None
) -> Standing:
    """`st` if its role reaches `needs`. Else: NotFound when there is no such namespace; RefusedUnseen
    when `access` cannot see it (the message is `missing`, what a missing object answers, so a write
    attempt tells nothing a read would not); Refused (403 naming both roles) otherwise."""
    if st.rank >= RANK[needs]:
        return st
    if st.role is None:
        if not st.exists:
            raise NotFound(missing or f"namespace {st.namespace} not found")
        refusal = Refusal(access.principal, action, subject, st.namespace, needs, None, "no access")
        raise RefusedUnseen(missing or f"namespace {st.namespace} not found", refusal)
    why = (
        f"{access.principal} is {st.role} in namespace {st.namespace} (via {st.via}); "
        f"{action} of {subject} needs {needs}"
    )
    raise Refused(Refusal(access.principal, action, subject, st.namespace, needs, st.role, why))


def require(
    session: Session,
    access: Access,
    namespace: str,
    needs: str,
    *,
    action: str,
    subject: str,
    missing: str | None = None,
) -> Standing:
    """Lock the namespace row and demand `needs` there (see `demand`)."""
    st = standing(session, access, namespace, lock=True)
    return demand(access, st, needs, action=action, subject=subject, missing=missing)


def require_alias(session: Session, access: Access, full_name: str, alias: str, action: str) -> Standing:
    """Moving or deleting `full_name@alias`: writer, or maintainer for a protected alias."""
    namespace = full_name.split("/", 1)[0]
    st = standing(session, access, namespace, lock=True)
    needs = alias_needs(st, alias)
    return demand(
        access,
        st,
        needs,
        action=action,
        subject=f"{full_name}@{alias}",
        missing=f"adapter {full_name} not found",
    )


def require_writable(
    session: Session, access: Access, namespace: str, *, action: str, subject: str
) -> Standing:
    """Writing into `namespace`, which a first write creates: writer there, or (no such namespace) the
    global writer role. Names are unique, so a principal writing into a private namespace it cannot
    see learns that the name is taken (403), as with GitHub organisations; nothing else of it."""
    st = standing(session, access, namespace, lock=True)
    if st.exists and st.role is None:
        why = f"{access.principal} may not write to namespace {namespace}"
        raise Refused(Refusal(access.principal, action, subject, namespace, "writer", None, why))
    if st.exists:
        return demand(access, st, "writer", action=action, subject=subject)
    require_global(access, "writer", action=f"{action} (creating namespace {namespace})", subject=subject)
    return st


def authorize_composition(
    session: Session, access: Access, output: str, inputs: list[str], aliases: list[str]
) -> None:
    """A composition: read on every input's namespace, write on the output's (or creating it), and
    maintainer there for each protected alias the spec moves. Checked when the run is submitted and
    again when it starts (as the principal that stored it)."""
    for name in sorted(set(inputs)):
        namespace = name.split("/", 1)[0]
        st = standing(session, access, namespace)
        demand(access, st, "reader", action="compose", subject=output, missing=f"adapter {name} not found")
    namespace = output.split("/", 1)[0]
    st = require_writable(session, access, namespace, action="compose", subject=output)
    for alias in aliases:
        if st.exists:
            demand(access, st, alias_needs(st, alias), action="compose", subject=f"{output}@{alias}")


def require_global(access: Access, needs: str, *, action: str, subject: str) -> None:
    """Registry-wide actions (keys, base models, creating namespaces): the global role decides."""
    order = ("reader", "writer", "admin")
    if order.index(access.role) >= order.index(needs):
        return
    why = f"{access.principal} has the global role {access.role}; {action} needs {needs} or above"
    raise Refused(Refusal(access.principal, action, subject, None, needs, access.role, why))


def may_write_somewhere(session: Session, access: Access) -> bool:
    """Cheap pre-check before accepting a large upload: a global writer, or a writer grant anywhere."""
    if access.role in ("writer", "admin"):
        return True
    return bool(
        session.scalar(
            select(
                exists().where(_grant.subject.in_(access.subjects), _grant.role.in_(("writer", "maintainer")))
            )
        )
    )


def maintains_somewhere(session: Session, access: Access) -> bool:
    """An admin, or a maintainer grant anywhere (what shows the web page's webhooks link)."""
    if access.is_admin:
        return True
    return bool(session.scalar(select(exists().where(_maintainer_grant(access)))))
