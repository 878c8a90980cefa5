"""version lifecycle: status (active / deprecated / archived / deleted) and its timestamps

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-25 06:15:00.000000

A deleted version keeps its row (soft delete): lineage edges and audit events keep naming its digest,
and `deleted_at` starts the grace period after which `pemreg gc` may remove its objects.

Plain ADD / DROP COLUMN on both databases, never SQLite's batch mode: batch rebuilds the table (copy,
drop, rename), and with foreign keys on, dropping adapter_versions cascades to every row that points
at it (aliases, lineage edges, evaluations, artifact_files). For the same reason the CHECK constraint
on `status` is added on PostgreSQL only (SQLite cannot add one without that rebuild); the service
layer writes only the four states.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUS_CHECK = "status IN ('active', 'deprecated', 'archived', 'deleted')"
COLUMNS = ("status", "status_changed_by", "status_changed_at", "deleted_at")


def _is_postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    op.add_column(
        "adapter_versions", sa.Column("status", sa.String(16), nullable=False, server_default="active")
    )
    op.add_column("adapter_versions", sa.Column("status_changed_by", sa.String(128), nullable=True))
    op.add_column(
        "adapter_versions", sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("adapter_versions", sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
    if _is_postgres():
        op.create_check_constraint("status", "adapter_versions", STATUS_CHECK)


def downgrade() -> None:
    if _is_postgres():
        op.drop_constraint("status", "adapter_versions", type_="check")  # named by the convention
        for column in reversed(COLUMNS):
            op.drop_column("adapter_versions", column)
    else:  # SQLite >= 3.35 drops a column in place (no table rebuild, no cascade)
        for column in reversed(COLUMNS):
            op.execute(f"ALTER TABLE adapter_versions DROP COLUMN {column}")
