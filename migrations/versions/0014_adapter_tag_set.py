"""tag filters intersect one GIN index: adapters.tag_set, kept by triggers

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 05:30:00.000000

At 1M versions (benchmarks/catalog_load.py) `tag=tier:gold&tag=team:t7` merge-joined both tags'
entries of adapter_tags (33k + 2k) to find its 667 adapters: ~8 ms before any row was read.
`adapters.tag_set` holds each adapter's tags as "<len(key)>:key=value" elements (the length prefix
keeps `a=b` + `c` apart from `a` + `b=c`); on PostgreSQL a GIN index on it answers several tags with
one intersection of their posting lists (0.35 ms for the same 667).

The database keeps it equal to adapter_tags, whoever writes them (the service, a bulk COPY, psql):
- PostgreSQL: statement-level triggers (one UPDATE per statement, so a COPY of 200k tags recomputes
  each adapter once) that first lock the adapters concerned and then recompute them in a new
  statement, whose snapshot sees a concurrent writer's tags once it has committed;
- SQLite: row-level triggers (it has no others), the same recomputation, a JSON array.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of registry.catalog.tables.TAG_SET_ELEMENT_SQL (a migration must not import the models).
ELEMENT = "length(key) || ':' || key || '=' || value"
BACKFILL_IDS = 10_000

PG_FUNCTION = f"""
CREATE FUNCTION adapters_sync_tag_set() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE ids bigint[];
BEGIN
    IF TG_OP = 'UPDATE' THEN
        SELECT array_agg(DISTINCT adapter_id) INTO ids
        FROM (SELECT adapter_id FROM changed UNION ALL SELECT adapter_id FROM changed_before) AS c;
    ELSE
        SELECT array_agg(DISTINCT adapter_id) INTO ids FROM changed;
    END IF;
    -- Lock first: a writer of the same adapters' tags in another transaction commits before the
    -- UPDATE below starts, and that statement's snapshot then sees its tags. NO KEY UPDATE (the lock
    -- the UPDATE takes anyway): FOR UPDATE would conflict with the KEY SHARE lock the foreign-key check
    -- of each writer's own insert already holds, and two writers of one adapter would deadlock.
    PERFORM 1 FROM adapters WHERE id = ANY(ids) ORDER BY id FOR NO KEY UPDATE;
    UPDATE adapters AS a SET tag_set = (
        SELECT array_agg({ELEMENT} ORDER BY key) FROM adapter_tags WHERE adapter_id = a.id
    ) WHERE a.id = ANY(ids);
    RETURN NULL;
END $$
"""
# TRUNCATE fires no row or transition-table trigger: its own statement trigger empties every copy.
PG_CLEAR = """
CREATE FUNCTION adapters_clear_tag_set() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE adapters SET tag_set = NULL WHERE tag_set IS NOT NULL;
    RETURN NULL;
END $$
"""
PG_TRUNCATE = "adapter_tags_sync_truncate"
PG_TRIGGERS = {
    "adapter_tags_sync_insert": "AFTER INSERT ON adapter_tags REFERENCING NEW TABLE AS changed",
    "adapter_tags_sync_update": (
        "AFTER UPDATE ON adapter_tags REFERENCING OLD TABLE AS changed_before NEW TABLE AS changed"
    ),
    "adapter_tags_sync_delete": "AFTER DELETE ON adapter_tags REFERENCING OLD TABLE AS changed",
}


def _sqlite_recompute(adapter_id: str) -> str:
    return (
        f"UPDATE adapters SET tag_set = (SELECT CASE WHEN count(*) THEN json_group_array(e) END FROM "
        f"(SELECT {ELEMENT} AS e FROM adapter_tags WHERE adapter_id = {adapter_id} ORDER BY key)) "
        f"WHERE id = {adapter_id};"
    )


SQLITE_TRIGGERS = {
    "adapter_tags_sync_insert": ("AFTER INSERT", [_sqlite_recompute("NEW.adapter_id")]),
    "adapter_tags_sync_update": (
        "AFTER UPDATE",
        [_sqlite_recompute("OLD.adapter_id"), _sqlite_recompute("NEW.adapter_id")],
    ),
    "adapter_tags_sync_delete": ("AFTER DELETE", [_sqlite_recompute("OLD.adapter_id")]),
}


def _is_postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if _is_postgres():
        op.add_column("adapters", sa.Column("tag_set", sa.ARRAY(sa.Text())))
        op.execute(PG_FUNCTION)
        for name, when in PG_TRIGGERS.items():
            op.execute(
                f"CREATE TRIGGER {name} {when} FOR EACH STATEMENT EXECUTE FUNCTION adapters_sync_tag_set()"
            )
        op.execute(PG_CLEAR)
        op.execute(
            f"CREATE TRIGGER {PG_TRUNCATE} AFTER TRUNCATE ON adapter_tags "
            "FOR EACH STATEMENT EXECUTE FUNCTION adapters_clear_tag_set()"
        )
        # In id ranges: each statement stays well within the client's statement bound
        # (registry.catalog.location.DbLimits) on a large catalog (100k adapters: ~10 s at once).
        last = (
            op.get_bind().execute(sa.text("SELECT coalesce(max(adapter_id), 0) FROM adapter_tags")).scalar()
        )
        for low in range(0, int(last or 0) + 1, BACKFILL_IDS):
            op.execute(
                f"UPDATE adapters AS a SET tag_set = s.elements FROM (SELECT adapter_id, "
                f"array_agg({ELEMENT} ORDER BY key) AS elements FROM adapter_tags "
                f"WHERE adapter_id >= {low} AND adapter_id < {low + BACKFILL_IDS} GROUP BY adapter_id) AS s "
                f"WHERE s.adapter_id = a.id"
            )
        op.execute("CREATE INDEX ix_adapters_tag_set ON adapters USING gin (tag_set) WITH (fastupdate = off)")
    else:
        op.add_column("adapters", sa.Column("tag_set", sa.JSON()))
        for name, (when, statements) in SQLITE_TRIGGERS.items():
            body = " ".join(statements)
            op.execute(f"CREATE TRIGGER {name} {when} ON adapter_tags FOR EACH ROW BEGIN {body} END")
        op.execute(
            "UPDATE adapters SET tag_set = (SELECT json_group_array(e) FROM (SELECT "
            f"{ELEMENT} AS e FROM adapter_tags WHERE adapter_id = adapters.id ORDER BY key)) "
            "WHERE id IN (SELECT adapter_id FROM adapter_tags)"
        )


def downgrade() -> None:
    for name in PG_TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (" ON adapter_tags" if _is_postgres() else ""))
    if _is_postgres():
        op.execute(f"DROP TRIGGER IF EXISTS {PG_TRUNCATE} ON adapter_tags")
        op.execute("DROP FUNCTION IF EXISTS adapters_clear_tag_set()")
        op.execute("DROP FUNCTION IF EXISTS adapters_sync_tag_set()")
        op.execute("DROP INDEX IF EXISTS ix_adapters_tag_set")
    op.drop_column("adapters", "tag_set")
