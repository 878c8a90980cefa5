"""catalog status filter index; a composition run's timings

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 19:30:00.000000

- `adapter_versions (status, adapter_id)`: `GET /v1/adapters?status=deprecated` (and the web catalog's
  status filter) keeps adapters with a version in that status. Deprecated and archived versions are a
  small share of a catalog; the index reads their adapter ids directly instead of probing the
  versions of every listed adapter.
- `compositions.timings` (JSON): what a run measured about itself, e.g. each hold of the `gpu`
  concurrency slot (`{"device": [{"step", "acquired", "released", "waited_s"}]}`). Added in place,
  without SQLite's batch table rebuild (a rebuild of `compositions` would null the composition ids
  that lineage edges and evaluations keep).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_adapter_versions_status_adapter", "adapter_versions", ["status", "adapter_id"])
    op.add_column(
        "compositions", sa.Column("timings", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
    )


def downgrade() -> None:
    op.drop_column("compositions", "timings")
    op.drop_index("ix_adapter_versions_status_adapter", table_name="adapter_versions")
