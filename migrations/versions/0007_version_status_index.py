"""catalog status filter: adapter versions indexed by (status, adapter_id)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 19:30:00.000000

`GET /v1/adapters?status=deprecated` (and the web catalog's status filter) keeps adapters with a version
in that status. Deprecated and archived versions are a small share of a catalog; this index lets the
database read their adapter ids directly instead of probing every listed adapter's versions.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_adapter_versions_status_adapter", "adapter_versions", ["status", "adapter_id"])


def downgrade() -> None:
    op.drop_index("ix_adapter_versions_status_adapter", table_name="adapter_versions")
