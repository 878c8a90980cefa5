"""version lifecycle: status (active / deprecated / archived / deleted) and its timestamps

Revision ID: 0005
Revises: 0002
Create Date: 2026-11-25 06:15:00.000000

A deleted version keeps its row (soft delete): lineage edges and audit events keep naming its digest,
and `deleted_at` starts the grace period after which `pemreg gc` may remove its objects.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUS_CHECK = "status IN ('active', 'deprecated', 'archived', 'deleted')"


def upgrade() -> None:
    with op.batch_alter_table("adapter_versions") as batch:
        batch.add_column(sa.Column("status", sa.String(16), nullable=False, server_default="active"))
        batch.add_column(sa.Column("status_changed_by", sa.String(128), nullable=True))
        batch.add_column(sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_check_constraint("status", STATUS_CHECK)


def downgrade() -> None:
    with op.batch_alter_table("adapter_versions") as batch:
        batch.drop_constraint("status", type_="check")  # named by the convention
        batch.drop_column("deleted_at")
        batch.drop_column("status_changed_at")
        batch.drop_column("status_changed_by")
        batch.drop_column("status")
