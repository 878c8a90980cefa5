"""trigram search indexes (PostgreSQL) and the artifact_files digest index

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 10:00:00.000000

- PostgreSQL only: the pg_trgm extension and GIN trigram indexes on exactly the expressions
  `list_adapters(query=...)` filters on (registry.catalog.models.search_expressions). SQLite gets none:
  no index serves a leading-wildcard LIKE there.
- Both: `artifact_files` (digest -> version or merged model, filename), backfilled from the `files`
  JSON of existing adapter_versions and merged_models, so `find_by_digest` needs no JSON scan.
"""

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# name -> indexed expression; must stay identical to models.search_expressions (the planner only
# uses an expression index for a query expression that parses to the same tree).
TRGM_INDEXES = {
    "ix_adapters_search_full_name": "lower((namespace || '/') || name)",
    "ix_adapters_search_description": "lower(description)",
    "ix_adapters_search_task": "lower(task)",
}
BATCH = 5000


def _is_postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if _is_postgres():
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for name, expr in TRGM_INDEXES.items():
            # fastupdate off: see models.py (searches must not scan a pending list of new rows).
            op.execute(
                f"CREATE INDEX {name} ON adapters USING gin ({expr} gin_trgm_ops) WITH (fastupdate = off)"
            )

    op.create_table(
        "artifact_files",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("version_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("merged_model_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("filename", sa.String(length=512), nullable=False),
        sa.CheckConstraint(
            "(kind = 'adapter_version' AND version_id IS NOT NULL AND merged_model_id IS NULL) OR "
            "(kind = 'merged_model' AND merged_model_id IS NOT NULL AND version_id IS NULL)",
            name=op.f("ck_artifact_files_one_owner"),
        ),
        sa.ForeignKeyConstraint(
            ["merged_model_id"],
            ["merged_models.id"],
            name=op.f("fk_artifact_files_merged_model_id_merged_models"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["adapter_versions.id"],
            name=op.f("fk_artifact_files_version_id_adapter_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artifact_files")),
        sa.UniqueConstraint(
            "merged_model_id", "filename", name=op.f("uq_artifact_files_merged_model_id_filename")
        ),
        sa.UniqueConstraint("version_id", "filename", name=op.f("uq_artifact_files_version_id_filename")),
    )
    with op.batch_alter_table("artifact_files", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_artifact_files_digest"), ["digest"], unique=False)

    _backfill()


def downgrade() -> None:
    with op.batch_alter_table("artifact_files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_artifact_files_digest"))
    op.drop_table("artifact_files")

    if _is_postgres():
        for name in TRGM_INDEXES:
            op.execute(f"DROP INDEX IF EXISTS {name}")
        # Left installed if something else uses it (DROP would fail on dependents, not cascade).
        op.execute(
            "DO $$ BEGIN DROP EXTENSION IF EXISTS pg_trgm; "
            "EXCEPTION WHEN dependent_objects_still_exist THEN NULL; END $$"
        )


# Lightweight table stubs: a migration must not import the current models, which move on.
_files = sa.table(
    "artifact_files",
    sa.column("digest", sa.String),
    sa.column("kind", sa.String),
    sa.column("version_id", sa.BigInteger),
    sa.column("merged_model_id", sa.BigInteger),
    sa.column("filename", sa.String),
)


def _owners(conn: sa.Connection, table: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(id, files) of every row, keyset-paginated so a large catalog is never held in memory at once."""
    source = sa.table(table, sa.column("id", sa.BigInteger), sa.column("files", sa.JSON))
    last = 0
    while True:
        rows = conn.execute(
            sa.select(source.c.id, source.c.files)
            .where(source.c.id > last)
            .order_by(source.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        for row_id, files in rows:
            yield row_id, files or {}
        last = rows[-1][0]


def _backfill() -> None:
    """Portable (PostgreSQL and SQLite): JSON is decoded in Python, rows inserted in batches."""
    conn = op.get_bind()
    for table, kind, owner_col in (
        ("adapter_versions", "adapter_version", "version_id"),
        ("merged_models", "merged_model", "merged_model_id"),
    ):
        pending: list[dict[str, Any]] = []
        for row_id, files in _owners(conn, table):
            for filename, entry in files.items():
                digest = entry.get("sha256") if isinstance(entry, dict) else None
                if not isinstance(digest, str) or not digest:
                    continue  # nothing to find it by
                pending.append(
                    {
                        "digest": digest.lower(),
                        "kind": kind,
                        "version_id": row_id if owner_col == "version_id" else None,
                        "merged_model_id": row_id if owner_col == "merged_model_id" else None,
                        "filename": filename,
                    }
                )
            if len(pending) >= BATCH:
                conn.execute(_files.insert(), pending)
                pending = []
        if pending:
            conn.execute(_files.insert(), pending)
