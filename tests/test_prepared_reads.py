"""The compiled reads (registry.catalog.prepared) give the rows SQLAlchemy gives: every read statement the
CLI's local reads run, in each kind of shape, on one catalog (with lineage edges, training records, keys,
grants and an audit event naming inputs), through Core (CoreReads) and through sqlite3 alone with the
SQL compiled from the same builders (SqliteReads): compiled afresh, then again from the on-disk cache.
Then the cache itself: what it keeps, what invalidates it, and what it survives."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.catalog.migrate import upgrade
from registry.catalog.prepared import cache as cache_module
from registry.catalog.prepared.cache import KEPT, ReadCache, code_fingerprint
from registry.catalog.prepared.compiled import NotCompilable, compile_read
from registry.catalog.prepared.core import CoreReads
from registry.catalog.prepared.sqlite_reads import sqlite_reads
from registry.catalog.prepared.statement import ReadStatement
from registry.service import Registry, register_adapter, set_alias
from registry.service.access.identity import Access
from registry.service.access.namespace_reads import GRANTS, GRANTS_OF_SUBJECTS, OWNED_NAMESPACES, READABLE
from registry.service.access.namespaces import create_namespace, set_grant
from registry.service.access.standing import HELD, NAMESPACE, OWNED, bound, subject_values
from registry.service.admin.key_reads import KEYS
from registry.service.admin.keys import create_key
from registry.service.catalog import audit_reads, lineage, queries
from registry.service.catalog.audit import record
from registry.service.catalog.resolve import RESOLVE, ResolveShape, resolve_version
from registry.service.registration import base_reads
from registry.settings import Settings
from registry.synthetic import make_ia3, make_lora
from registry.training import parse_training

ADMIN = Access.operator("ops")
READER = Access(principal="ann", role="reader", groups=("ml",))
Read = tuple[ReadStatement, Any, dict[str, Any]]


def _catalog(reg: Registry, tmp_path: Path) -> None:
    gold = {"tier": "gold"}
    register_adapter(reg, str(make_lora(tmp_path / "a", seed=1)), "lean/math", task="math", tags=gold)
    trained = parse_training(["acc=0.9"], ["lr=1e-4"], ["hf://d"])
    register_adapter(reg, str(make_lora(tmp_path / "b", seed=2)), "lean/math", task="math", training=trained)
    register_adapter(reg, str(make_ia3(tmp_path / "c", seed=3)), "lean/style")
    create_namespace(reg, "hush", visibility="private", description="private")
    register_adapter(reg, str(make_lora(tmp_path / "d", seed=4)), "hush/secret")
    set_alias(reg, "lean/math@1", "prod")
    set_grant(reg, "hush", "group:ml", "reader")
    set_grant(reg, "lean", "key:other", "writer")
    create_key(reg, "ci", "reader")
    with transaction(reg.sessions) as session:  # lean/style@1 made from lean/math@1 and hush/secret@1
        child = resolve_version(session, "lean/style@1", access=reg.acting)
        for parent in ("lean/math@1", "hush/secret@1"):
            made_from = resolve_version(session, parent, access=reg.acting)
            edge = m.LineageEdge(
                parent_version_id=made_from.id, child_version_id=child.id, operator="linear", weight=1
            )
            session.add(edge)
        inputs = ["lean/math@1", "hush/secret@1"]
        record(session, "ops", "compose", "lean/style@1", inputs=inputs)


def _reads(ids: dict[str, int]) -> tuple[list[Read], list[Read]]:
    """(reads whose SQL is kept, reads compiled for their values each time): each read statement the
    local CLI runs, bound as its read binds it, for an admin and for a reader (whose subjects are a list)."""
    kept: list[Read] = []
    per_call: list[Read] = []
    math = {"namespace": "lean", "name": "math"}
    for who in (ADMIN, READER):
        admin, mine = who.is_admin, bound(who)
        into = kept if admin else per_call
        listing = queries.ListingShape(
            postgres=False, admin=admin, include_archived=False, base_model=False, base_revision=False,
            pem_type=False, status=False, task=False, metric_ops=(), params=0, datasets=0, tags=0,
            after=False,
        )  # fmt: skip
        every_filter = replace(
            listing, include_archived=True, base_model=True, base_revision=True, pem_type=True, status=True,
            task=True, metric_ops=(">=",), params=1, datasets=1, tags=1, after=True,
        )  # fmt: skip
        filters = {
            "base_name": "tiny-llama", "base_revision": "main", "pem_type": "lora", "status": "active",
            "task": "math", "metric_name_0": "acc", "metric_value_0": 0.5, "param_name_0": "lr",
            "param_value_0": "1e-4", "dataset_0": "hf://d", "tag_key_0": "tier", "tag_value_0": "gold",
            "after_namespace": "a", "after_name": "b",
        }  # fmt: skip
        subject = {"subject": "lean/style", "subject_at": "lean/style@"}
        into += [
            (queries.LISTING, listing, {"limit": 51, **mine}),
            (queries.LISTING, every_filter, {"limit": 5, **filters, **mine}),
            (queries.LISTING, replace(listing, query=True), {"limit": 9, "pattern": "%mat%", **mine}),
            (queries.ADAPTER, admin, {**math, **mine}),
            (RESOLVE, ResolveShape("alias", False, admin, "shown"), {**math, "selector": "prod", **mine}),
            (RESOLVE, ResolveShape("version", True, admin), {**math, "selector": 2, **mine}),
            (RESOLVE, ResolveShape("digest", False, admin), {**math, "selector": ids["sha"][:8], **mine}),
            (RESOLVE, ResolveShape("latest", False, admin), {**math, **mine}),
            (lineage.WALK, ("up", admin), {"root": ids["style"], "depth": 10, **mine}),
            (lineage.WALK, ("down", admin), {"root": ids["math"], "depth": 10, **mine}),
            (audit_reads.EVENTS, (admin, True, True), {"limit": 50, **subject, "actor": "ops", **mine}),
            (audit_reads.EVENTS, (admin, False, False), {"limit": 50, **mine}),
            (READABLE, admin, mine),
            (OWNED_NAMESPACES, admin, mine),
            (base_reads.ADAPTER_COUNT, admin, {"base_id": ids["base"], **mine}),
            (base_reads.ADAPTER_NAMES, admin, {"base_id": ids["base"], "limit": 2, **mine}),
        ]
        kept += [
            (HELD, len(who.subjects), {"namespace": "hush", **subject_values(who)}),
            (GRANTS_OF_SUBJECTS, len(who.subjects), subject_values(who)),
        ]
    per_call += [
        (audit_reads.VISIBLE, None, {"names": ["hush", "lean"], **bound(READER)}),
        (audit_reads.DIGESTS, None, {"versions": [("hush", "secret", 1), ("lean", "math", 1)]}),
    ]
    kept += [
        (queries.VERSIONS, True, {"adapter_id": ids["math_adapter"]}),
        (queries.VERSIONS, False, {"adapter_id": ids["math_adapter"]}),
        (queries.ALIASES, None, {"adapter_id": ids["math_adapter"]}),
        (queries.TRAINING, (True, True), {"adapter_id": ids["math_adapter"]}),
        (queries.TRAINING, (False, False), {"version_id": ids["math2"]}),
        (NAMESPACE, None, {"namespace": "hush"}),
        (OWNED, None, {"namespace": "hush"}),
        (GRANTS, None, {"namespace": "hush"}),
        (KEYS, True, {}),
        (KEYS, False, {}),
        (base_reads.BASES, None, {}),
        (base_reads.NAMED, False, {"name": "tiny-llama"}),
        (base_reads.NAMED, True, {"name": "tiny-llama", "revision": "main"}),
        (base_reads.REGISTRATION, None, {"subject": "base:tiny-llama@main"}),
    ]
    return kept, per_call


def _ids(reg: Registry) -> dict[str, int]:
    with transaction(reg.sessions) as session:
        math1 = resolve_version(session, "lean/math@1", access=reg.acting)
        math2 = resolve_version(session, "lean/math@2", access=reg.acting)
        style = resolve_version(session, "lean/style@1", access=reg.acting)
        base = session.scalars(select(m.BaseModel)).first()
        assert base is not None
        return {
            "math": math1.id,
            "math2": math2.id,
            "style": style.id,
            "math_adapter": math1.adapter_id,
            "sha": math1.sha256,  # type: ignore[dict-item]
            "base": base.id,
        }


@pytest.fixture
def embedded(tmp_path: Path) -> Registry:
    """The embedded catalog (SQLite and a folder): what the compiled reads run on."""
    settings = Settings(
        home=tmp_path / "home",
        database_url=f"sqlite:///{tmp_path / 'reg.db'}",
        artifact_store=(tmp_path / "artifacts").as_uri(),
        principal="tester",
    )
    upgrade(settings.resolved_database_url)
    registry = Registry(settings)
    registry.store.ensure_ready()
    return registry


def test_compiled_reads_give_the_rows_sqlalchemy_gives(embedded: Registry, tmp_path: Path) -> None:
    reg = embedded
    url = reg.settings.resolved_database_url
    _catalog(reg, tmp_path)
    kept, per_call = _reads(_ids(reg))
    cache = ReadCache(tmp_path / "sql")
    path = url.removeprefix("sqlite:///")
    for round_ in ("compiled now", "from the cache"):
        empty = []
        with reg.connect() as conn, sqlite_reads(path, 5.0, cache) as compiled:
            core = CoreReads(conn)
            for statement, shape, values in kept + per_call:
                expected = core.rows(statement, shape, values)
                got = compiled.rows(statement, shape, values)
                assert got == expected, (round_, statement, shape)
                assert [r._fields for r in got] == [r._fields for r in expected], (statement, shape)
                types = [tuple(type(v) for v in r) for r in expected]  # True == 1: the types too
                assert [tuple(type(v) for v in r) for r in got] == types, (statement, shape)
                empty += [] if expected else [(statement.builder.split(":")[1], shape)]
        # Rows to compare in every read but the operator's grants (an admin needs none).
        assert empty == [("held", 1), ("grants_of_subjects", 1)], empty
        cache = ReadCache(tmp_path / "sql")  # a new command: the file, not this process's copy
    on_disk = json.loads(next((tmp_path / "sql").glob("*.json")).read_text())
    # What a reader who is not an admin runs binds a list (its subjects): compiled per call, never kept.
    assert set(on_disk) == {statement.key(shape) for statement, shape, _ in kept}


def test_a_statement_that_needs_its_values_is_compiled_for_them_and_not_kept() -> None:
    with pytest.raises(NotCompilable):
        compile_read(RESOLVE, ResolveShape("version", False, False), "sqlite")
    values = {"policy_subjects": ["a", "b", "c"], "namespace": "n", "name": "x", "selector": 1}
    for_them = compile_read(RESOLVE, ResolveShape("version", False, False), "sqlite", values)
    assert "POSTCOMPILE" not in for_them.sql and set(for_them.params) <= set(for_them.literals)
    assert [for_them.literals[p] for p in for_them.params if p.startswith("policy")] == ["a", "b", "c"]
    metric = queries.ListingShape(
        postgres=False, admin=True, include_archived=False, base_model=False, base_revision=False,
        pem_type=False, status=False, task=False, metric_ops=(">",), params=0, datasets=0, tags=0,
        after=False,
    )  # fmt: skip
    assert compile_read(queries.LISTING, metric, "sqlite").encoders == {"metric_value_0": "float"}


def test_the_cache_is_keyed_by_the_code_and_survives_damage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "registry"
    package.mkdir()
    (package / "a.py").write_text("x = 1\n")
    monkeypatch.setattr(cache_module, "_PACKAGE", package)
    before = code_fingerprint()
    (package / "a.py").write_text("x = 22\n")  # a changed builder: another file of compiled SQL
    assert code_fingerprint() != before
    read = compile_read(KEYS, True, "sqlite")
    cache = ReadCache(tmp_path / "sql")
    cache.put("k", read)
    assert ReadCache(tmp_path / "sql").get("k") == read
    for damaged in ("{not json", "[]", '{"k": {"sql": 1}}'):
        cache.path.write_text(damaged)
        assert ReadCache(tmp_path / "sql").get("k") is None  # compiled again, never an error
    (package / "a.py").unlink()  # no sources to key by (a bytecode-only install): nothing kept
    ReadCache(tmp_path / "none").put("k", read)
    assert not (tmp_path / "none").exists()
    blocked = tmp_path / "file"
    blocked.write_text("")
    ReadCache(blocked / "sql").put("k", read)  # cannot be written: the read still runs


def test_the_cache_keeps_the_newest_versions_and_no_old_partial_file(tmp_path: Path) -> None:
    read = compile_read(KEYS, True, "sqlite")
    folder = tmp_path / "sql"
    folder.mkdir()
    for i in range(KEPT + 2):
        old = folder / f"{i:032x}.json"
        old.write_text("{}")
        os.utime(old, (1000 + i, 1000 + i))
    (folder / ".partial-old.tmp").write_text("")
    os.utime(folder / ".partial-old.tmp", (1000, 1000))
    (folder / ".partial-new.tmp").write_text("")  # a command writing now
    cache = ReadCache(folder)
    cache.put("k", read)
    left = sorted(p.name for p in folder.iterdir())
    newest = [f"{i:032x}.json" for i in range(KEPT + 2)][-(KEPT - 1) :]
    assert left == sorted([".partial-new.tmp", cache.path.name, *newest]), left
