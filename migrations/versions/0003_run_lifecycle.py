"""composition run lifecycle: heartbeat, lease owner and attempt columns, and the reconcile index

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 06:30:00.000000

- `heartbeat_at`: refreshed every few seconds by the process running the composition; a pending or
  running row whose heartbeat (or creation, before the first beat) is older than the stale-after
  setting is reconciled (`pemreg compositions reconcile`, `pemreg serve` / `pemreg worker` start).
- `worker`: which process holds the run (host:pid), for the operator reading a stuck row.
- `attempt`: 1 for the first try; a reconciled run that the spec allows to retry starts attempt 2.
- index (status, heartbeat_at): the reconcile query reads only pending/running rows.
Existing rows keep their values; nothing is renamed.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("compositions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("worker", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("attempt", sa.Integer(), server_default="1", nullable=False))
        batch_op.create_index("ix_compositions_status_heartbeat", ["status", "heartbeat_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("compositions", schema=None) as batch_op:
        batch_op.drop_index("ix_compositions_status_heartbeat")
        batch_op.drop_column("attempt")
        batch_op.drop_column("worker")
        batch_op.drop_column("heartbeat_at")
