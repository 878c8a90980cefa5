"""The policy's rules on a table of principals x namespaces, on SQLite and PostgreSQL: the in-query read
predicate (what listings filter on; `maintained` for webhooks) and the per-namespace standing (what
writes are decided on) give the same answer for every pair, and both give the role the product contract
states."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.errors import NotFound
from registry.service import Registry
from registry.service.access.identity import Access
from registry.service.access.namespaces import create_namespace, ensure_namespace, set_grant
from registry.service.access.policy import (
    Refused,
    RefusedUnseen,
    alias_needs,
    demand,
    maintained,
    maintains_somewhere,
    readable,
    standing,
)

NAMESPACES = {  # name: (visibility, owned)
    "int-unowned": ("internal", False),
    "int-owned": ("internal", True),
    "priv-unowned": ("private", False),
    "priv-owned": ("private", True),
}
PRINCIPALS = {
    "global-reader": Access("key:gr", "reader"),
    "global-writer": Access("key:gw", "writer"),
    "admin": Access("key:adm", "admin"),
    "granted-reader": Access("key:r", "reader"),
    "granted-writer": Access("key:w", "reader"),
    "granted-maintainer": Access("key:mt", "writer"),
    "via-group": Access("user:ada", "reader", ("ml-team",)),
    "anonymous": Access("anonymous", "reader"),
}
GRANTS = {"key:r": "reader", "key:w": "writer", "key:mt": "maintainer", "group:ml-team": "writer"}
# The contract (section 6a), written out: role per (principal, namespace), None = sees nothing.
EXPECTED = {
    "global-reader": ("reader", "reader", None, None),
    "global-writer": ("writer", "reader", None, None),
    "admin": ("admin", "admin", "admin", "admin"),
    "granted-reader": ("reader", "reader", None, "reader"),
    "granted-writer": ("reader", "writer", None, "writer"),
    "granted-maintainer": ("writer", "maintainer", None, "maintainer"),
    "via-group": ("reader", "writer", None, "writer"),
    "anonymous": ("reader", "reader", None, None),
}


@pytest.fixture
def orgs(reg: Registry) -> Registry:
    for name, (visibility, owned) in NAMESPACES.items():
        create_namespace(reg, name, visibility=visibility, protected_aliases=["prod", "release-*"])
        if owned:
            for subject, role in GRANTS.items():
                set_grant(reg, name, subject, role)
    return reg


def test_predicate_and_standing_agree_with_the_contract(orgs: Registry) -> None:
    order = list(NAMESPACES)
    with orgs.sessions() as session:
        for who, access in PRINCIPALS.items():
            seen = set(
                session.scalars(
                    select(m.Namespace.name).where(
                        readable(access, m.Namespace.name), m.Namespace.name.in_(order)
                    )
                )
            )
            roles = tuple(standing(session, access, ns).role for ns in order)
            assert roles == EXPECTED[who], who
            assert seen == {ns for ns, role in zip(order, roles, strict=True) if role is not None}, who
            # The in-query form of "maintains it" (a namespace's webhooks) agrees with the standing.
            managed = set(
                session.scalars(
                    select(m.Namespace.name).where(
                        maintained(access, m.Namespace.name), m.Namespace.name.in_(order)
                    )
                )
            )
            assert managed == {
                ns for ns, role in zip(order, roles, strict=True) if role in ("maintainer", "admin")
            }, who
            assert maintains_somewhere(session, access) == (who in ("admin", "granted-maintainer")), who


def test_protected_aliases_need_a_maintainer(orgs: Registry) -> None:
    with orgs.sessions() as session:
        writer = standing(session, PRINCIPALS["granted-writer"], "int-owned")
        maintainer = standing(session, PRINCIPALS["granted-maintainer"], "int-owned")
    assert [alias_needs(writer, a) for a in ("prod", "release-1", "staging", "prod2")] == [
        "maintainer",
        "maintainer",
        "writer",
        "writer",
    ]
    demand(PRINCIPALS["granted-writer"], writer, "writer", action="alias_move", subject="int-owned/x@staging")
    with pytest.raises(Refused, match="needs maintainer"):
        demand(
            PRINCIPALS["granted-writer"],
            writer,
            "maintainer",
            action="alias_move",
            subject="int-owned/x@prod",
        )
    demand(PRINCIPALS["granted-maintainer"], maintainer, "maintainer", action="alias_move", subject="x@prod")


def test_unseen_namespace_answers_as_missing(orgs: Registry) -> None:
    outsider = PRINCIPALS["global-writer"]
    with orgs.sessions() as session:
        hidden = standing(session, outsider, "priv-owned")
        absent = standing(session, outsider, "no-such-ns")
    with pytest.raises(RefusedUnseen, match="^adapter priv-owned/x not found$") as unseen:
        demand(
            outsider,
            hidden,
            "writer",
            action="alias_move",
            subject="priv-owned/x@a",
            missing="adapter priv-owned/x not found",
        )
    assert unseen.value.refusal.namespace == "priv-owned"  # audited in that namespace
    with pytest.raises(NotFound, match="^adapter no-such-ns/x not found$") as missing:
        demand(
            outsider,
            absent,
            "writer",
            action="alias_move",
            subject="no-such-ns/x@a",
            missing="adapter no-such-ns/x not found",
        )
    assert not hasattr(missing.value, "refusal")


def test_first_write_creates_the_namespace_as_configured(orgs: Registry) -> None:
    writer = orgs.acting_as(PRINCIPALS["global-writer"])
    reader = orgs.acting_as(PRINCIPALS["global-reader"])
    with pytest.raises(Refused, match="needs writer"), transaction(reader.sessions) as session:
        ensure_namespace(reader, session, "fresh", action="register", subject="fresh/x")
    with transaction(writer.sessions) as session:
        st = ensure_namespace(writer, session, "fresh", action="register", subject="fresh/x")
    assert (st.visibility, st.owned, st.role) == ("internal", False, "writer")
    private = Registry(orgs.settings.model_copy(update={"default_visibility": "private"}))
    private.__dict__["sessions"] = orgs.sessions
    writer_p = private.acting_as(PRINCIPALS["global-writer"])
    with transaction(writer_p.sessions) as session:
        st = ensure_namespace(writer_p, session, "mine", action="register", subject="mine/x")
    # Private by default: its creator is its maintainer, else nobody but admins could see it.
    assert (st.visibility, st.role, st.via) == ("private", "maintainer", "key:gw")
    with orgs.sessions() as session:
        assert standing(session, PRINCIPALS["global-reader"], "mine").role is None


def test_insert_ignore_tells_an_insert_from_a_conflict(reg: Registry) -> None:
    """What ensure_namespace (and alias moves) rely on: on PostgreSQL too, a conflict is not an insert."""
    from registry.catalog.upsert import insert_ignore

    row = {"name": "x", "visibility": "internal", "protected_aliases": [], "created_by": "t"}
    row |= {"created_at": m.utcnow(), "updated_at": m.utcnow()}
    with transaction(reg.sessions) as session:
        assert insert_ignore(session, m.Namespace, row, conflict=["name"]) is True
    with transaction(reg.sessions) as session:
        assert insert_ignore(session, m.Namespace, row, conflict=["name"]) is False
