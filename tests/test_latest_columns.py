"""adapters.latest_listed / latest_archived / latest_any, which listings read where they probed
adapter_versions per row (migration 0015), stay equal to adapter_versions through registration, status
changes, deletes and direct SQL; listings show the latest listed version and hide archived-only ones."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from registry import service
from registry.catalog.db import get_engine
from registry.service import Registry
from registry.service.catalog import lifecycle as lc

LISTED = {"active", "deprecated"}


def _versions(reg: Registry) -> dict[str, list[tuple[int, str]]]:
    with get_engine(reg.settings.resolved_database_url).connect() as conn:
        names = [r[0] for r in conn.execute(text("SELECT namespace || '/' || name FROM adapters"))]
        rows = conn.execute(
            text(
                "SELECT a.namespace || '/' || a.name, v.version, v.status "
                "FROM adapter_versions v JOIN adapters a ON a.id = v.adapter_id"
            )
        ).all()
    found: dict[str, list[tuple[int, str]]] = {n: [] for n in names}
    for name, version, status in rows:
        found[name].append((version, status))
    return found


def _check(reg: Registry) -> None:
    """The columns against max() over each adapter's versions, and the listings against them."""
    versions = _versions(reg)

    def top(found: list[tuple[int, str]], statuses: set[str] | None) -> int | None:
        return max((v for v, s in found if statuses is None or s in statuses), default=None)

    expected = {
        n: (top(vs, LISTED), top(vs, LISTED | {"archived"}), top(vs, None)) for n, vs in versions.items()
    }
    with get_engine(reg.settings.resolved_database_url).connect() as conn:
        stored = {
            f"{ns}/{name}": (a, b, c)
            for ns, name, a, b, c in conn.execute(
                text("SELECT namespace, name, latest_listed, latest_archived, latest_any FROM adapters")
            )
        }
    assert stored == expected
    listed = {a.name: a.latest_version for a in service.list_adapters(reg, limit=500).items}
    assert listed == {n: e[0] for n, e in expected.items() if e[0] is not None or e[2] is None}
    with_archived = {
        a.name: a.latest_version for a in service.list_adapters(reg, limit=500, include_archived=True).items
    }
    assert with_archived == {n: e[0] if e[0] is not None else e[1] for n, e in expected.items()}


def test_latest_columns_follow_adapter_versions(reg: Registry, adapter_dirs: dict[str, Path]) -> None:
    service.register_adapter(reg, adapter_dirs["lora"], "acme/one")
    service.register_adapter(reg, adapter_dirs["lora2"], "acme/one")
    service.register_adapter(reg, adapter_dirs["lora"], "acme/two")
    _check(reg)
    lc.set_status(reg, "acme/one@2", "archive")
    _check(reg)
    lc.set_status(reg, "acme/one@1", "deprecate")
    lc.set_status(reg, "acme/two@1", "archive")  # archived only: hidden unless asked for
    _check(reg)
    assert "acme/two" not in [a.name for a in service.list_adapters(reg).items]
    lc.set_status(reg, "acme/one@2", "restore")
    lc.delete_version(reg, "acme/two@1")
    _check(reg)
    with get_engine(reg.settings.resolved_database_url).begin() as conn:  # bypassing the service
        conn.execute(text("UPDATE adapter_versions SET status = 'archived' WHERE version = 2"))
        conn.execute(text("DELETE FROM adapter_versions WHERE status = 'deleted'"))  # two: no versions left
    _check(reg)
    with get_engine(reg.settings.resolved_database_url).begin() as conn:
        conn.execute(text("DELETE FROM adapters WHERE name = 'one'"))
    _check(reg)
    # PostgreSQL's TRUNCATE fires no row or transition-table trigger: its own statement trigger clears
    # the columns (SQLite has no TRUNCATE; its DELETE fires the row triggers checked above)
    service.register_adapter(reg, adapter_dirs["lora"], "acme/three")
    with get_engine(reg.settings.resolved_database_url).begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("TRUNCATE adapter_versions CASCADE"))
    _check(reg)
