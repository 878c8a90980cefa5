"""The compiled reads (registry.catalog.prepared) give the rows SQLAlchemy gives: every statement the
CLI's local reads run, on one catalog, through Core (CoreReads) and through sqlite3 alone with the SQL
compiled from the same builders (SqliteReads), fresh and again from the on-disk cache."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from registry.catalog.prepared.cache import ReadCache
from registry.catalog.prepared.compiled import NotCompilable, compile_read
from registry.catalog.prepared.core import CoreReads
from registry.catalog.prepared.sqlite_reads import SqliteReads, sqlite_reads
from registry.catalog.prepared.statement import ReadStatement
from registry.service import Registry, register_adapter, set_alias
from registry.service.access.identity import Access
from registry.service.access.namespaces import create_namespace, set_grant
from registry.service.access.standing import HELD, NAMESPACE, OWNED, bound, subject_values
from registry.service.admin.key_reads import KEYS
from registry.service.admin.keys import create_key
from registry.service.catalog import audit_reads, lineage, queries
from registry.service.catalog.resolve import RESOLVE, ResolveShape
from registry.service.registration import base_reads
from registry.synthetic import make_ia3, make_lora
from registry.training import parse_training

ADMIN = Access.operator("ops")
READER = Access(principal="ann", role="reader", groups=("ml",))


def _reads(reg: Registry) -> list[tuple[ReadStatement, Any, dict[str, Any]]]:
    """(statement, shape, values): each read statement the local CLI runs, as it binds them."""
    out: list[tuple[ReadStatement, Any, dict[str, Any]]] = []
    math = {"namespace": "lean", "name": "math"}
    for who in (ADMIN, READER):
        admin, mine = who.is_admin, bound(who)
        listing = queries.ListingShape(
            postgres=False, admin=admin, include_archived=False, base_model=False, base_revision=False,
            pem_type=False, status=False, task=False, metric_ops=(), params=0, datasets=0, tags=0,
            after=False,
        )  # fmt: skip
        filtered = replace(listing, task=True, tags=1, after=True)
        tagged = {"task": "math", "tag_key_0": "tier", "tag_value_0": "gold"}
        after = {"after_namespace": "a", "after_name": "b"}
        subject = {"subject": "lean/math", "subject_at": "lean/math@"}
        out += [
            (queries.LISTING, listing, {"limit": 51, **mine}),
            (queries.LISTING, filtered, {"limit": 5, **tagged, **after, **mine}),
            (queries.LISTING, replace(listing, query=True), {"limit": 9, "pattern": "%mat%", **mine}),
            (queries.ADAPTER, admin, {**math, **mine}),
            (RESOLVE, ResolveShape("alias", False, admin, "shown"), {**math, "selector": "prod", **mine}),
            (RESOLVE, ResolveShape("latest", False, admin), {**math, **mine}),
            (lineage.WALK, ("down", admin), {"root": 1, "depth": 10, **mine}),
            (audit_reads.EVENTS, (admin, True, False), {"limit": 50, **subject, **mine}),
            (HELD, len(who.subjects), {"namespace": "hush", **subject_values(who)}),
            (base_reads.ADAPTER_COUNT, admin, {"base_id": 1, **mine}),
        ]
    out += [
        (queries.VERSIONS, True, {"adapter_id": 1}),
        (queries.ALIASES, None, {"adapter_id": 1}),
        (queries.TRAINING, True, {"adapter_id": 1}),
        (NAMESPACE, None, {"namespace": "hush"}),
        (OWNED, None, {"namespace": "hush"}),
        (KEYS, True, {}),
        (base_reads.BASES, None, {}),
        (base_reads.NAMED, False, {"name": "tiny-llama"}),
    ]
    return out


def test_compiled_reads_give_the_rows_sqlalchemy_gives(reg: Registry, tmp_path: Path) -> None:
    url = reg.settings.resolved_database_url
    if not url.startswith("sqlite:///"):
        pytest.skip("the compiled reads run on the embedded SQLite catalog")
    register_adapter(
        reg, str(make_lora(tmp_path / "a", seed=1)), "lean/math", task="math", tags={"tier": "gold"}
    )
    trained = parse_training(["acc=0.9"], ["lr=1e-4"], ["hf://d"])
    register_adapter(reg, str(make_lora(tmp_path / "b", seed=2)), "lean/math", task="math", training=trained)
    create_key(reg, "ci", "reader")
    register_adapter(reg, str(make_ia3(tmp_path / "c", seed=3)), "lean/style")
    set_alias(reg, "lean/math@1", "prod")
    create_namespace(reg, "hush", visibility="private", description="private")
    set_grant(reg, "hush", "group:ml", "reader")
    reads = _reads(reg)
    cache = ReadCache(tmp_path / "sql")
    path = url.removeprefix("sqlite:///")
    for round_ in ("compiled now", "from the cache"):
        empty = []
        with reg.connect() as conn, sqlite_reads(path, 5.0, cache) as compiled:
            core = CoreReads(conn)
            for i, (statement, shape, values) in enumerate(reads):
                expected = core.rows(statement, shape, values)
                got = compiled.rows(statement, shape, values)
                assert got == expected, (round_, statement, shape)
                assert [r._fields for r in got] == [r._fields for r in expected], (statement, shape)
                empty += [] if expected else [i]
        # Rows to compare in every read but the operator's grants in `hush` (none: an admin needs none).
        assert [reads[i][0] for i in empty] == [HELD]
        cache = ReadCache(tmp_path / "sql")  # a new command: the file, not this process's copy
    kept = json.loads(next((tmp_path / "sql").glob("*.json")).read_text())
    # A reader who is not an admin binds its subjects as a list: compiled per call, never kept.
    assert not [key for key in kept if "admin=False" in key], kept
    assert lineage.WALK.key(("down", True)) in kept and lineage.WALK.key(("down", False)) not in kept
    assert sum(key.startswith(queries.LISTING.builder) for key in kept) == 3


def test_a_list_bound_at_execution_is_not_kept_and_a_damaged_cache_is_compiled_again(tmp_path: Path) -> None:
    with pytest.raises(NotCompilable):
        compile_read(RESOLVE, ResolveShape("version", False, False), "sqlite")
    expanded = compile_read(
        RESOLVE, ResolveShape("version", False, False), "sqlite", {"policy_subjects": ["a", "b", "c"]}
    )
    assert expanded.sql.count("?") >= 3 + 3 and "POSTCOMPILE" not in expanded.sql
    cache = ReadCache(tmp_path)
    cache.put("k", compile_read(KEYS, True, "sqlite"))
    assert ReadCache(tmp_path).get("k") == compile_read(KEYS, True, "sqlite")
    cache.path.write_text("{not json")
    assert ReadCache(tmp_path).get("k") is None  # unreadable: compiled again, never an error
    assert isinstance(SqliteReads.dialect, str)
