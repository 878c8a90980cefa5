"""a composition run's search record

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 17:20:00.000000

- `compositions.search` (JSON, null when the spec has no `search:`): the lambda search's strategy,
  objective, every candidate (weights, metrics, whether it passed the gates) and the winner. The run
  view derives each input's applied weight from it, so CLI, REST, client and web show the weights a
  search applied beside the ones the spec wrote. Runs made before this revision keep null (their
  provenance.json still holds the record). Added in place, without SQLite's batch table rebuild (see
  0007: a rebuild of `compositions` would null the ids lineage edges and evaluations keep).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("compositions", sa.Column("search", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("compositions", "search")
