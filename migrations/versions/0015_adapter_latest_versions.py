"""an adapter's latest versions on its row, kept by triggers

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 05:40:00.000000

Every listing decided per candidate adapter whether it is listed (it has an active or deprecated
version, or no version at all) with two correlated max(version) probes, before sorting: 667 probes
for `tag=tier:gold&tag=team:t7` at 1M versions (~7 ms of the 10 ms statement once migration 0014
made the intersection itself 0.35 ms), 2000 for one team tag, and two more per listed row.
`adapters.latest_listed` (max version active or deprecated), `latest_archived` (the same with
archived ones) and `latest_any` (any status, deleted included) hold them; the database recomputes
them whenever adapter_versions changes, as migration 0014 does for tags (statement-level triggers
that lock the adapters first on PostgreSQL, row-level ones on SQLite).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = {  # frozen: registry.service.catalog.resolve.LISTED and the version statuses of 0005
    "latest_listed": "status IN ('active', 'deprecated')",
    "latest_archived": "status IN ('active', 'deprecated', 'archived')",
    "latest_any": "1 = 1",
}
BACKFILL_IDS = 10_000


def _recompute(adapter: str) -> str:
    """SET clause: each column from the adapter's versions (an index probe each)."""
    return ", ".join(
        f"{col} = (SELECT max(version) FROM adapter_versions WHERE adapter_id = {adapter} AND {cond})"
        for col, cond in COLUMNS.items()
    )


PG_FUNCTION = f"""
CREATE FUNCTION adapters_sync_latest() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE ids bigint[];
BEGIN
    IF TG_OP = 'UPDATE' THEN
        SELECT array_agg(DISTINCT adapter_id) INTO ids
        FROM (SELECT adapter_id FROM changed UNION ALL SELECT adapter_id FROM changed_before) AS c;
    ELSE
        SELECT array_agg(DISTINCT adapter_id) INTO ids FROM changed;
    END IF;
    -- Lock first, then recompute in a new statement (migration 0014 says why).
    PERFORM 1 FROM adapters WHERE id = ANY(ids) ORDER BY id FOR NO KEY UPDATE;
    UPDATE adapters AS a SET {_recompute("a.id")} WHERE a.id = ANY(ids);
    RETURN NULL;
END $$
"""
# TRUNCATE fires no row or transition-table trigger: its own statement trigger empties the columns.
PG_CLEAR = f"""
CREATE FUNCTION adapters_clear_latest() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE adapters SET {", ".join(f"{col} = NULL" for col in COLUMNS)} WHERE latest_any IS NOT NULL;
    RETURN NULL;
END $$
"""
PG_TRUNCATE = "adapter_versions_sync_truncate"
PG_TRIGGERS = {
    "adapter_versions_sync_insert": "AFTER INSERT ON adapter_versions REFERENCING NEW TABLE AS changed",
    "adapter_versions_sync_update": (
        "AFTER UPDATE ON adapter_versions REFERENCING OLD TABLE AS changed_before NEW TABLE AS changed"
    ),
    "adapter_versions_sync_delete": "AFTER DELETE ON adapter_versions REFERENCING OLD TABLE AS changed",
}


def _sqlite_recompute(adapter: str) -> str:
    return f"UPDATE adapters SET {_recompute(adapter)} WHERE id = {adapter};"


SQLITE_TRIGGERS = {
    "adapter_versions_sync_insert": ("AFTER INSERT", [_sqlite_recompute("NEW.adapter_id")]),
    # Only when what the columns read changed: registration updates other columns of a new version.
    "adapter_versions_sync_update": (
        "AFTER UPDATE OF adapter_id, version, status",
        [_sqlite_recompute("OLD.adapter_id"), _sqlite_recompute("NEW.adapter_id")],
    ),
    "adapter_versions_sync_delete": ("AFTER DELETE", [_sqlite_recompute("OLD.adapter_id")]),
}


def _is_postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    for col in COLUMNS:
        op.add_column("adapters", sa.Column(col, sa.Integer()))
    if _is_postgres():
        op.execute(PG_FUNCTION)
        for name, when in PG_TRIGGERS.items():
            op.execute(
                f"CREATE TRIGGER {name} {when} FOR EACH STATEMENT EXECUTE FUNCTION adapters_sync_latest()"
            )
        op.execute(PG_CLEAR)
        op.execute(
            f"CREATE TRIGGER {PG_TRUNCATE} AFTER TRUNCATE ON adapter_versions "
            "FOR EACH STATEMENT EXECUTE FUNCTION adapters_clear_latest()"
        )
    else:
        for name, (when, statements) in SQLITE_TRIGGERS.items():
            body = " ".join(statements)
            op.execute(f"CREATE TRIGGER {name} {when} ON adapter_versions FOR EACH ROW BEGIN {body} END")
    # In id ranges: each statement well within the client's statement bound on a large catalog.
    last = op.get_bind().execute(sa.text("SELECT coalesce(max(id), 0) FROM adapters")).scalar()
    for low in range(0, int(last or 0) + 1, BACKFILL_IDS):
        op.execute(
            f"UPDATE adapters SET {_recompute('adapters.id')} WHERE id >= {low} AND id < {low + BACKFILL_IDS}"
        )


def downgrade() -> None:
    for name in PG_TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (" ON adapter_versions" if _is_postgres() else ""))
    if _is_postgres():
        op.execute(f"DROP TRIGGER IF EXISTS {PG_TRUNCATE} ON adapter_versions")
        op.execute("DROP FUNCTION IF EXISTS adapters_clear_latest()")
        op.execute("DROP FUNCTION IF EXISTS adapters_sync_latest()")
    for col in reversed(list(COLUMNS)):
        op.drop_column("adapters", col)
