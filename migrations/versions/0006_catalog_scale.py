"""catalog at scale: tag filters served by an index-only scan

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 06:30:00.000000

`adapter_tags (key, value)` becomes `(key, value, adapter_id)`: a `tag=key:value` filter then reads
matching adapter ids from the index alone, in id order, and two tag filters merge-join. At 1M
versions (benchmarks/catalog_load.py) the two-tag filter went from a bitmap heap scan of 33k rows
and a hash join (37 ms) to two index-only scans and a merge join (27 ms, most of it the final
lookups of the matching adapters).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("adapter_tags", schema=None) as batch_op:
        batch_op.create_index(
            "ix_adapter_tags_key_value_adapter", ["key", "value", "adapter_id"], unique=False
        )
        batch_op.drop_index("ix_adapter_tags_key_value")


def downgrade() -> None:
    with op.batch_alter_table("adapter_tags", schema=None) as batch_op:
        batch_op.create_index("ix_adapter_tags_key_value", ["key", "value"], unique=False)
        batch_op.drop_index("ix_adapter_tags_key_value_adapter")
