"""Version lifecycle on both backends: deprecate / archive / restore / delete, alias delete, tag and
description edits, key listing; every step audited, lineage truthful after a delete."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from registry import service
from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.errors import Conflict, NotFound
from registry.service import Registry
from registry.service.admin.keys import create_key, revoke_key
from registry.service.catalog import lifecycle as lc
from registry.service.catalog.resolve import resolve_version


def _register(reg: Registry, folder: Path, name: str) -> int:
    version, created = service.register_adapter(reg, str(folder), name)
    assert created
    return version.version


def _edge(reg: Registry, parent: str, child: str) -> None:
    """A lineage edge as a composition records it (the compose path itself is tested elsewhere)."""
    with transaction(reg.sessions) as session:
        p, c = (
            resolve_version(session, parent, access=reg.acting),
            resolve_version(session, child, access=reg.acting),
        )
        session.add(
            m.LineageEdge(parent_version_id=p.id, child_version_id=c.id, operator="linear", weight=0.5)
        )


def _actions(reg: Registry, subject: str) -> list[str]:
    return [e.action for e in reversed(service.list_events(reg, subject=subject))]


def test_archive_hides_from_latest_and_listings_restore_brings_back(
    reg: Registry, adapter_dirs: dict[str, Path]
) -> None:
    _register(reg, adapter_dirs["lora"], "acme/math")
    _register(reg, adapter_dirs["lora2"], "acme/math")
    assert service.get_version(reg, "acme/math").version == 2

    archived = lc.set_status(reg, "acme/math@2", "archive")
    assert archived.status == "archived"
    assert service.get_version(reg, "acme/math").version == 1  # latest skips it
    assert service.get_version(reg, "acme/math@2").status == "archived"  # a number still names it
    shown = service.show_adapter(reg, "acme/math")
    assert [v.version for v in shown.versions or []] == [1] and shown.latest_version == 1
    full = service.show_adapter(reg, "acme/math", include_archived=True)
    assert [(v.version, v.status) for v in full.versions or []] == [(1, "active"), (2, "archived")]
    assert service.list_adapters(reg).items[0].latest_version == 1

    lc.set_status(reg, "acme/math@1", "archive")
    assert service.list_adapters(reg).items == []  # nothing left to list by default
    assert [a.latest_version for a in service.list_adapters(reg, include_archived=True).items] == [2]
    with pytest.raises(NotFound, match="no active version"):
        service.get_version(reg, "acme/math")

    lc.set_status(reg, "acme/math@2", "restore")
    assert service.get_version(reg, "acme/math").version == 2
    lc.set_status(reg, "acme/math@2", "restore")  # no change: no event
    assert _actions(reg, "acme/math@2") == ["register", "version_archive", "version_restore"]


def test_deprecated_stays_usable_and_warns_as_input(reg: Registry, adapter_dirs: dict[str, Path]) -> None:
    _register(reg, adapter_dirs["lora"], "acme/old")
    _register(reg, adapter_dirs["lora2"], "acme/new")
    assert lc.input_warnings(reg, [("acme/old", 1), ("acme/new", 1)]) == []
    lc.set_status(reg, "acme/old@1", "deprecate")
    assert service.get_version(reg, "acme/old").version == 1  # still latest
    warnings = lc.input_warnings(reg, [("acme/old", 1), ("acme/new", 1)])
    assert len(warnings) == 1 and warnings[0].startswith("input acme/old@1 is deprecated since ")
    assert _actions(reg, "acme/old@1") == ["register", "version_deprecate"]


def test_delete_refuses_with_descendants_then_keeps_lineage_truthful(
    reg: Registry, adapter_dirs: dict[str, Path]
) -> None:
    _register(reg, adapter_dirs["lora"], "acme/parent")
    _register(reg, adapter_dirs["lora2"], "acme/child")
    _edge(reg, "acme/parent@1", "acme/child@1")
    service.set_alias(reg, "acme/parent@1", "prod")
    parent_sha = service.get_version(reg, "acme/parent@1").sha256

    with pytest.raises(Conflict, match=r"versions descend from it: acme/child@1"):
        lc.delete_version(reg, "acme/parent@1")
    assert service.get_version(reg, "acme/parent@1").status == "active"  # nothing changed

    lc.delete_version(reg, "acme/child@1")
    deleted = lc.delete_version(reg, "acme/parent@1")  # its only child is deleted now
    assert deleted.status == "deleted" and deleted.aliases == []
    with pytest.raises(NotFound, match="was deleted"):
        service.get_version(reg, "acme/parent@1")
    with pytest.raises(NotFound, match="no alias 'prod'"):  # its alias went with it
        service.get_version(reg, "acme/parent@prod")

    graph = service.lineage(reg, "acme/child@1")  # a deleted root by number: still answered
    assert {(n.name, n.sha256, n.status) for n in graph.nodes} >= {("acme/parent", parent_sha, "deleted")}
    assert [(e.parent, e.child) for e in graph.edges] == [("acme/parent@1", "acme/child@1")]
    match = service.find_by_digest(reg, parent_sha)[0]
    assert (match.name, match.version, match.status) == ("acme/parent", 1, "deleted")

    assert _actions(reg, "acme/parent") == ["register", "alias_move", "alias_delete", "version_delete"]
    with pytest.raises(Conflict, match="was deleted"):  # the same bytes do not come back silently
        service.register_adapter(reg, str(adapter_dirs["lora"]), "acme/parent")

    with reg.sessions() as session:
        assert lc.deleted_before(session, m.utcnow() - timedelta(days=1)) == []  # still in grace
        due = lc.deleted_before(session, m.utcnow() + timedelta(seconds=1))
    assert sorted(due) == sorted([("acme", "parent", parent_sha), ("acme", "child", deleted_child_sha(reg))])


def deleted_child_sha(reg: Registry) -> str:
    return service.lineage(reg, "acme/child@1").nodes[0].sha256


def test_alias_delete_tags_description_and_keys(reg: Registry, adapter_dirs: dict[str, Path]) -> None:
    _register(reg, adapter_dirs["lora"], "acme/math")
    service.set_alias(reg, "acme/math@1", "prod")
    assert lc.delete_alias(reg, "acme/math", "prod") == 1
    with pytest.raises(NotFound, match="no alias 'prod'"):
        lc.delete_alias(reg, "acme/math", "prod")

    view = lc.update_adapter(reg, "acme/math", tags={"team": "nlp", "stage": "dev"}, description="sums")
    assert view.tags == {"stage": "dev", "team": "nlp"} and view.description == "sums"
    view = lc.update_adapter(reg, "acme/math", tags={"stage": None})
    assert view.tags == {"team": "nlp"} and view.description == "sums"
    assert _actions(reg, "acme/math") == [
        "register",
        "alias_move",
        "alias_delete",
        "adapter_update",
        "adapter_update",
    ]

    create_key(reg, "ci", "writer")
    create_key(reg, "old", "reader")
    revoke_key(reg, "old")
    keys = {k.name: (k.role, k.revoked_at is not None) for k in lc.list_keys(reg)}
    assert keys == {"ci": ("writer", False), "old": ("reader", True)}
    assert [k.name for k in lc.list_keys(reg, include_revoked=False)] == ["ci"]
