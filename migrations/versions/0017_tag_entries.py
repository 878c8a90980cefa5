"""a tag filter's page from an index of tags in listing order (PostgreSQL)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 19:30:00.000000

At 1M versions (benchmarks/catalog_load.py) `tag=tier:gold&tag=team:t7` matches 667 of 100k adapters:
the GIN index on adapters.tag_set (migration 0014) finds them in 0.5 ms, and then every one of them is
read from the table to sort them for the page of 50 (667 heap reads, ~3 ms; a quarter of PostgreSQL's
work in the benchmark's mix).

`tag_entries` holds each tag of each adapter with the adapter's namespace and name, keyed (key, value,
namespace, name): one tag's adapters are in listing order, so a tag filter walks its rarest tag's
entries in that order, probes the others' entries by the same key, and stops at the page's last match
(registry.service.catalog.queries; ~1 ms for the filter above).

The database keeps it equal to adapter_tags joined with adapters, whoever writes them (the service, a
bulk COPY, psql): statement-level triggers on adapter_tags add and remove entries (a COPY of 200k tags
is one INSERT), a row-level trigger on adapters follows a changed namespace or name, and deleting an
adapter deletes its entries (foreign key). PostgreSQL only: SQLite's tag filters probe adapter_tags.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BACKFILL_IDS = 10_000

_ADD = (
    "INSERT INTO tag_entries (key, value, namespace, name, adapter_id) "
    "SELECT c.key, c.value, a.namespace, a.name, a.id FROM {source} JOIN adapters AS a ON a.id = c.adapter_id"
)
_REMOVE = "DELETE FROM tag_entries AS e USING {source} WHERE e.adapter_id = c.adapter_id AND e.key = c.key"

PG_FUNCTIONS = {
    "tag_entries_insert": f"""
CREATE FUNCTION tag_entries_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {_ADD.format(source="changed AS c")};
    RETURN NULL;
END $$
""",
    "tag_entries_update": f"""
CREATE FUNCTION tag_entries_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {_REMOVE.format(source="changed_before AS c")};
    {_ADD.format(source="changed AS c")};
    RETURN NULL;
END $$
""",
    "tag_entries_delete": f"""
CREATE FUNCTION tag_entries_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {_REMOVE.format(source="changed AS c")};
    RETURN NULL;
END $$
""",
    "tag_entries_clear": """
CREATE FUNCTION tag_entries_clear() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM tag_entries;
    RETURN NULL;
END $$
""",
    "tag_entries_rename": """
CREATE FUNCTION tag_entries_rename() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE tag_entries SET namespace = NEW.namespace, name = NEW.name WHERE adapter_id = NEW.id;
    RETURN NULL;
END $$
""",
}
PG_TRIGGERS = {
    "adapter_tags_entries_insert": (
        "adapter_tags",
        "AFTER INSERT ON adapter_tags REFERENCING NEW TABLE AS changed FOR EACH STATEMENT "
        "EXECUTE FUNCTION tag_entries_insert()",
    ),
    "adapter_tags_entries_update": (
        "adapter_tags",
        "AFTER UPDATE ON adapter_tags REFERENCING OLD TABLE AS changed_before NEW TABLE AS changed "
        "FOR EACH STATEMENT EXECUTE FUNCTION tag_entries_update()",
    ),
    "adapter_tags_entries_delete": (
        "adapter_tags",
        "AFTER DELETE ON adapter_tags REFERENCING OLD TABLE AS changed FOR EACH STATEMENT "
        "EXECUTE FUNCTION tag_entries_delete()",
    ),
    # TRUNCATE fires no row or transition-table trigger: a statement trigger of its own.
    "adapter_tags_entries_truncate": (
        "adapter_tags",
        "AFTER TRUNCATE ON adapter_tags FOR EACH STATEMENT EXECUTE FUNCTION tag_entries_clear()",
    ),
    # Every version registered updates its adapter's row (migration 0015's columns): the WHEN test keeps
    # those from running any function.
    "adapters_tag_entries_rename": (
        "adapters",
        "AFTER UPDATE ON adapters FOR EACH ROW "
        "WHEN (OLD.namespace IS DISTINCT FROM NEW.namespace OR OLD.name IS DISTINCT FROM NEW.name) "
        "EXECUTE FUNCTION tag_entries_rename()",
    ),
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE TABLE tag_entries ("
        " key VARCHAR(128) NOT NULL, value VARCHAR(512) NOT NULL,"
        " namespace VARCHAR(64) NOT NULL, name VARCHAR(128) NOT NULL, adapter_id BIGINT NOT NULL,"
        " CONSTRAINT fk_tag_entries_adapter_id_adapters FOREIGN KEY (adapter_id) REFERENCES adapters (id)"
        " ON DELETE CASCADE,"
        " CONSTRAINT pk_tag_entries PRIMARY KEY (key, value, namespace, name) INCLUDE (adapter_id))"
    )
    op.execute("CREATE INDEX ix_tag_entries_adapter_id_key ON tag_entries (adapter_id, key)")
    for body in PG_FUNCTIONS.values():
        op.execute(body)
    for name, (_, definition) in PG_TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {definition}")
    # In id ranges: each statement well within the client's statement bound on a large catalog.
    last = op.get_bind().exec_driver_sql("SELECT coalesce(max(adapter_id), 0) FROM adapter_tags").scalar()
    for low in range(0, int(last or 0) + 1, BACKFILL_IDS):
        ids = f"adapter_id >= {low} AND adapter_id < {low + BACKFILL_IDS}"
        source = f"(SELECT * FROM adapter_tags WHERE {ids}) AS c"
        op.execute(_ADD.format(source=source))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, (table, _) in PG_TRIGGERS.items():
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
    for name in PG_FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    op.execute("DROP TABLE IF EXISTS tag_entries")
