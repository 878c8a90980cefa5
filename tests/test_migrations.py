"""Every schema change is a migration: upgrade -> downgrade -> upgrade works, and head equals the models."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from registry.catalog.db import get_engine
from registry.catalog.migrate import downgrade, upgrade
from registry.catalog.models import POSTGRES_ONLY_TABLES, Base, compared_on


def _diff(url: str) -> list:
    with get_engine(url).connect() as conn:
        opts = {"compare_type": True, "include_object": compared_on(conn.dialect.name)}
        ctx = MigrationContext.configure(conn, opts=opts)
        return compare_metadata(ctx, Base.metadata)


def _tables(url: str) -> set[str]:
    return set(inspect(get_engine(url)).get_table_names()) - {"alembic_version"}


def _round_trip(url: str) -> None:
    expected = set(Base.metadata.tables)
    if url.startswith("sqlite"):
        expected -= POSTGRES_ONLY_TABLES
    upgrade(url)
    assert _tables(url) == expected
    downgrade(url, "base")
    assert _tables(url) == set()
    upgrade(url)
    assert _tables(url) == expected
    assert _diff(url) == []


def test_sqlite_upgrade_downgrade_upgrade_matches_models(tmp_path: Path) -> None:
    _round_trip(f"sqlite:///{tmp_path / 'm.db'}")


@pytest.mark.postgres
def test_postgres_upgrade_downgrade_upgrade_matches_models(fresh_pg_url: str) -> None:
    _round_trip(fresh_pg_url)


# A catalog as 0007 left it: keys recorded by bare name, namespaces only as the `ns` of adapter names.
_LEGACY = [
    "INSERT INTO base_models (id, name, revision, source, created_by, created_at) "
    "VALUES (1, 'tiny', 'main', '/m', 'root', '2026-01-01 00:00:00+00')",
    "INSERT INTO adapters (id, namespace, name, pem_type, base_model_id, created_by, created_at, updated_at) "
    "VALUES (1, 'acme', 'math', 'lora', 1, 'alice', '2026-01-01 00:00:00+00', '2026-01-01 00:00:00+00')",
    "INSERT INTO adapter_versions (id, adapter_id, version, sha256, use_rslora, target_modules, dtype, "
    "size_bytes, num_parameters, files, extra, artifact_uri, created_by, created_at) "
    "VALUES (1, 1, 1, 'ab', false, '[]', 'float32', 1, 1, '{}', '{}', 'file:///x', 'alice', "
    "'2026-01-01 00:00:00+00')",
    "INSERT INTO api_keys (id, name, role, prefix, key_hash, created_by, created_at) "
    "VALUES (1, 'alice', 'writer', 'p1', 'h1', 'root', '2026-01-01 00:00:00+00'), "
    "(2, 'bob', 'reader', 'p2', 'h2', 'root', '2026-01-01 00:00:00+00')",
    "INSERT INTO compositions (id, output_name, method, spec, resolved_inputs, status, metrics, "
    "interference, trigger, cache_hit, principal, created_at) VALUES ('r1', 'acme/out', 'linear', '{}', "
    '\'[{"name": "lab/x", "version": 1}, {"name": "acme/math", "version": 1}]\', \'failed\', \'{}\', \'{}\', '
    "'api', false, 'alice', '2026-01-01 00:00:00+00')",
    # The operator's CLI run, under an OS user name that a key happens to carry too: not a key's run.
    "INSERT INTO compositions (id, output_name, method, spec, resolved_inputs, status, metrics, "
    "interference, trigger, cache_hit, principal, created_at) VALUES ('r2', 'acme/out', 'linear', '{}', "
    "'[]', 'failed', '{}', '{}', 'cli', false, 'bob', '2026-01-01 00:00:00+00')",
    "INSERT INTO audit_events (id, at, actor, action, subject, details) VALUES "
    "(1, '2026-01-01 00:00:00+00', 'alice', 'register', 'acme/math@1', '{}'), "
    "(2, '2026-01-01 00:00:00+00', 'root', 'gc_delete', 'adapters/lab/x/abc', '{}'), "
    "(3, '2026-01-01 00:00:00+00', 'root', 'key_create', 'key:alice', '{}')",
]


def _legacy_round_trip(url: str) -> None:
    from sqlalchemy import select, text

    from registry.catalog import models as m
    from registry.service import Registry, list_adapters
    from registry.service.access.identity import Access
    from registry.service.access.policy import standing
    from registry.settings import Settings

    upgrade(url, "0007")
    with get_engine(url).begin() as conn:
        for statement in _LEGACY:
            conn.execute(text(statement))
    upgrade(url)
    reg = Registry(Settings(database_url=url, principal="operator"))
    with reg.sessions() as session:
        spaces = session.execute(
            select(m.Namespace.name, m.Namespace.visibility, m.Namespace.created_by)
        ).all()
        assert sorted(tuple(s) for s in spaces) == [
            ("acme", "internal", "migration"),
            ("lab", "internal", "migration"),
        ]
        assert session.scalars(select(m.NamespaceGrant)).all() == []
        events = session.execute(
            select(m.AuditEvent.actor, m.AuditEvent.namespace).order_by(m.AuditEvent.id)
        ).all()
        assert [tuple(e) for e in events] == [("key:alice", "acme"), ("root", "lab"), ("root", None)]
        run = session.get_one(m.Composition, "r1")
        assert (run.principal, run.api_key_id, run.namespace) == ("key:alice", 1, "acme")
        cli = session.get_one(m.Composition, "r2")
        assert (cli.principal, cli.api_key_id) == ("bob", None)  # 0008 and 0010 agree: the operator
        assert set(session.scalars(select(m.CompositionNamespace.namespace))) == {"lab", "acme"}
        # Behaves as before: keys keep their global roles in every (unowned, internal) namespace.
        assert standing(session, Access("key:alice", "writer"), "acme").role == "writer"
        assert standing(session, Access("key:bob", "reader"), "acme").role == "reader"
    seen = list_adapters(reg.acting_as(Access("key:bob", "reader")))
    assert [a.name for a in seen.items] == ["acme/math"]
    downgrade(url, "0007")
    with get_engine(url).connect() as conn:
        principals = dict(conn.execute(text("SELECT id, principal FROM compositions")).all())
        assert principals == {"r1": "alice", "r2": "bob"}
        assert conn.execute(text("SELECT actor FROM audit_events WHERE id = 1")).scalar() == "alice"
    assert "namespaces" not in _tables(url)


def test_sqlite_namespaces_migration_keeps_an_existing_catalog_working(tmp_path: Path) -> None:
    _legacy_round_trip(f"sqlite:///{tmp_path / 'legacy.db'}")


@pytest.mark.postgres
def test_postgres_namespaces_migration_keeps_an_existing_catalog_working(fresh_pg_url: str) -> None:
    _legacy_round_trip(fresh_pg_url)
