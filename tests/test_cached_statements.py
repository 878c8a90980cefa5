"""The catalog's hot reads (listing, version lookup, lineage walk) build their statement once per shape
and bind the principal's subjects at execution. One statement object serves every reader: what each
sees must still be its own, in every order the readers come in."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.catalog.prepared.core import built
from registry.errors import NotFound
from registry.service import Registry, register_adapter, set_alias
from registry.service.access.identity import Access
from registry.service.access.namespaces import create_namespace, set_grant
from registry.service.catalog.lineage import lineage
from registry.service.catalog.queries import get_version, list_adapters
from registry.service.catalog.resolve import resolve_version
from registry.service.registration.base_reads import show_base_model
from registry.synthetic import make_lora

ALICE, BOB = Access("key:alice", "reader"), Access("key:bob", "reader")


@pytest.fixture
def two_teams(reg: Registry, tmp_path: Path) -> Registry:
    """red/base (private, alice's), blue/base (private, bob's), open/child made from both."""
    for ns, grantee in (("red", ALICE), ("blue", BOB)):
        create_namespace(reg, ns, visibility="private")
        set_grant(reg, ns, grantee.principal, "reader")
    create_namespace(reg, "open", visibility="internal")
    for i, name in enumerate(("red/base", "blue/base", "open/child")):
        register_adapter(reg, str(make_lora(tmp_path / name.replace("/", "-"), seed=i)), name)
    set_alias(reg, "red/base@1", "prod")
    set_alias(reg, "blue/base@1", "prod")
    with transaction(reg.sessions) as session:
        child = resolve_version(session, "open/child@1", access=reg.acting)
        for parent_ref in ("red/base@1", "blue/base@1"):
            parent = resolve_version(session, parent_ref, access=reg.acting)
            session.add(
                m.LineageEdge(
                    parent_version_id=parent.id, child_version_id=child.id, operator="linear", weight=1
                )
            )
    return reg


def _names(reg: Registry, access: Access) -> list[str]:
    return [a.name for a in list_adapters(reg.acting_as(access)).items]


def test_one_statement_serves_each_reader_its_own_rows(two_teams: Registry) -> None:
    reg = two_teams
    before = built.cache_info().currsize
    for _ in range(2):  # alternate, so each reader follows the other on the same statement
        assert _names(reg, ALICE) == ["open/child", "red/base"]
        assert _names(reg, BOB) == ["blue/base", "open/child"]
        assert _names(reg, Access("key:nobody", "reader")) == ["open/child"]
        assert _names(reg, Access("key:root", "admin")) == ["blue/base", "open/child", "red/base"]

        assert get_version(reg.acting_as(ALICE), "red/base@prod").name == "red/base"
        with pytest.raises(NotFound):  # bob does not see red: a missing adapter to him
            get_version(reg.acting_as(BOB), "red/base@prod")
        assert get_version(reg.acting_as(BOB), "blue/base@prod").name == "blue/base"

        for access, seen, hidden in ((ALICE, "red/base@1", 1), (BOB, "blue/base@1", 1)):
            graph = lineage(reg.acting_as(access), "open/child@1")
            shown = sorted(n.label for n in graph.nodes if not n.hidden)
            assert shown == sorted(["open/child@1", seen])
            assert sum(n.hidden for n in graph.nodes) == hidden
    # The readers above shared the non-admin statements: the cache of built statements grew by at most
    # one per shape used (a list, a lookup by alias, a walk up; each for readers and for admins), not per
    # principal (four of them listed).
    grown = built.cache_info().currsize - before
    assert grown <= 6, grown


def test_a_base_model_names_and_counts_only_the_adapters_its_reader_sees(two_teams: Registry) -> None:
    """`base-models show` (REST and CLI alike) lists a base's adapters: a private namespace's stay
    unnamed and uncounted for whoever cannot read it, as in every other listing."""
    reg = two_teams
    for access, names in (
        (ALICE, ["open/child", "red/base"]),
        (BOB, ["blue/base", "open/child"]),
        (Access("key:nobody", "reader"), ["open/child"]),
        (Access("key:root", "admin"), ["blue/base", "open/child", "red/base"]),
    ):
        detail = show_base_model(reg.acting_as(access), "tiny-llama")
        assert (detail.adapters, detail.adapter_count) == (names, len(names)), access
