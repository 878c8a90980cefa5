"""adapters.tag_set and tag_entries, the copies of adapter_tags that tag filters read on PostgreSQL
(migrations 0014 and 0017), stay equal to adapter_tags through every way tags change: registration,
`update_adapter` (add, change, remove), direct SQL (multi-row insert, update, delete, an adapter's
rename), an adapter's delete and TRUNCATE; and tag listings answer what adapter_tags says, whether a
filter walks its rarest tag's entries or intersects the GIN index (registry/service/catalog/tag_walk.py)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from registry import service
from registry.catalog.db import get_engine
from registry.service import Registry
from registry.service.catalog import lifecycle as lc

_TAG_ROWS = (
    "SELECT a.namespace || '/' || a.name, t.key, t.value "
    "FROM adapter_tags t JOIN adapters a ON a.id = t.adapter_id"
)


def _engine(reg: Registry):  # noqa: ANN202 - SQLAlchemy Engine
    return get_engine(reg.settings.resolved_database_url)


def _expected(reg: Registry) -> dict[str, list[str] | None]:
    """From adapter_tags, by this test's own rule: "<len(key)>:key=value" sorted by key, None if no tag."""
    with _engine(reg).connect() as conn:
        names = [r[0] for r in conn.execute(text("SELECT namespace || '/' || name FROM adapters"))]
        rows = conn.execute(text(_TAG_ROWS)).all()
    tags: dict[str, dict[str, str]] = {n: {} for n in names}
    for name, key, value in rows:
        tags[name][key] = value
    return {n: [f"{len(k)}:{k}={v}" for k, v in sorted(kv.items())] or None for n, kv in tags.items()}


def _stored(reg: Registry) -> dict[str, list[str] | None]:
    from registry.catalog import tables as t

    with _engine(reg).connect() as conn:
        rows = conn.execute(
            t.adapters.select().with_only_columns(
                t.adapters.c.namespace, t.adapters.c.name, t.adapters.c.tag_set
            )
        ).all()
    return {f"{ns}/{name}": (list(tag_set) if tag_set is not None else None) for ns, name, tag_set in rows}


def _listed(reg: Registry, tags: dict[str, str]) -> list[str]:
    return [a.name for a in service.list_adapters(reg, tags=tags, limit=500).items]


def _matching(reg: Registry, tags: dict[str, str]) -> list[str]:
    """Adapters with every tag, from adapter_tags (the listing's answer, computed independently)."""
    with _engine(reg).connect() as conn:
        rows = conn.execute(text(_TAG_ROWS)).all()
    have: dict[str, set[tuple[str, str]]] = {}
    for name, key, value in rows:
        have.setdefault(name, set()).add((key, value))
    return sorted(n for n, kv in have.items() if set(tags.items()) <= kv)


def _entries(reg: Registry) -> tuple[set[tuple[str, ...]], set[tuple[str, ...]]]:
    """(tag_entries as stored, what this test expects of it: adapter_tags with its adapter's name)."""
    with _engine(reg).connect() as conn:
        stored = conn.execute(text("SELECT key, value, namespace, name, adapter_id FROM tag_entries")).all()
        expected = conn.execute(
            text(
                "SELECT t.key, t.value, a.namespace, a.name, a.id "
                "FROM adapter_tags t JOIN adapters a ON a.id = t.adapter_id"
            )
        ).all()
    return {tuple(r) for r in stored}, {tuple(r) for r in expected}


def _check(reg: Registry) -> None:
    assert _stored(reg) == _expected(reg)
    if _engine(reg).dialect.name == "postgresql":
        stored, expected = _entries(reg)
        assert stored == expected
    for tags in ({"tier": "gold"}, {"tier": "gold", "team": "t7"}, {"stage": "dev"}, {"a": "b=c"}):
        assert _listed(reg, tags) == _matching(reg, tags), tags


def test_tag_set_follows_adapter_tags(reg: Registry, adapter_dirs: dict[str, Path]) -> None:
    service.register_adapter(reg, adapter_dirs["lora"], "acme/one", tags={"tier": "gold", "team": "t7"})
    service.register_adapter(reg, adapter_dirs["lora"], "acme/two", tags={"tier": "gold", "a": "b=c"})
    service.register_adapter(reg, adapter_dirs["lora"], "beta/three")
    _check(reg)
    assert _listed(reg, {"tier": "gold", "team": "t7"}) == ["acme/one"]
    # A filter whose key holds the `=` of a stored value is another tag: `a=b` + `c` is not `a` + `b=c`.
    assert _listed(reg, {"a=b": "c"}) == [] and _listed(reg, {"a": "b=c"}) == ["acme/two"]

    lc.update_adapter(reg, "acme/one", tags={"stage": "dev", "tier": "silver", "team": None})
    _check(reg)
    assert _listed(reg, {"tier": "gold"}) == ["acme/two"] and _listed(reg, {"stage": "dev"}) == ["acme/one"]
    lc.update_adapter(reg, "beta/three", tags={"tier": "gold"})
    lc.update_adapter(reg, "acme/one", tags={"stage": None, "tier": None})  # its last tags
    _check(reg)
    assert _stored(reg)["acme/one"] is None

    with _engine(reg).begin() as conn:  # writes that bypass the service, several rows per statement
        ids = dict(conn.execute(text("SELECT name, id FROM adapters")).all())
        conn.execute(
            text(
                "INSERT INTO adapter_tags (adapter_id, key, value) "
                "VALUES (:one, 'team', 't7'), (:one, 'tier', 'gold')"
            ),
            {"one": ids["one"]},
        )
        conn.execute(
            text("UPDATE adapter_tags SET value = 'dev' WHERE key = 'tier' AND adapter_id = :two"), ids
        )
        conn.execute(text("UPDATE adapter_tags SET adapter_id = :three WHERE key = 'a'"), ids)
        conn.execute(text("UPDATE adapters SET name = 'one-renamed' WHERE name = 'one'"))
    _check(reg)
    with _engine(reg).begin() as conn:
        conn.execute(text("UPDATE adapters SET name = 'one' WHERE name = 'one-renamed'"))
    _check(reg)
    assert _listed(reg, {"tier": "gold", "team": "t7"}) == ["acme/one"]
    assert _listed(reg, {"a": "b=c"}) == ["beta/three"]

    with _engine(reg).begin() as conn:
        conn.execute(text("DELETE FROM adapter_tags WHERE key = 'team'"))
        conn.execute(text("DELETE FROM adapters WHERE name = 'two'"))  # its tags go by cascade
    _check(reg)
    assert _listed(reg, {"tier": "gold"}) == ["acme/one", "beta/three"]

    # PostgreSQL's TRUNCATE fires no row or transition-table trigger: its own statement trigger clears
    # every copy (SQLite has no TRUNCATE; a DELETE of every row fires the row triggers)
    with _engine(reg).begin() as conn:
        postgres = conn.dialect.name == "postgresql"
        conn.execute(text("TRUNCATE adapter_tags" if postgres else "DELETE FROM adapter_tags"))
    _check(reg)
    assert set(_stored(reg).values()) == {None}
