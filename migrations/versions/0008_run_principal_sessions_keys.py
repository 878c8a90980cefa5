"""who stored a run's spec; server-side web sessions; a revoked key's name may be reused

Revision ID: 0008_trust
Revises: 0007
Create Date: 2026-12-06 16:00:00.000000

- `compositions.api_key_id`: the key row a run's principal stored it with, checked again when the run
  starts (scheduled, recomposed, retried): a revoked key's runs stop even when a new key reuses its
  name. Existing rows: a run triggered over REST (`trigger = 'api'`) was stored by the API key named in
  `principal` (key names were unique until this revision, so the match is exact); every other row by
  the operator (the CLI, the worker), whatever its name. 0010 renames exactly the rows given a key here
  to `key:<name>`. Added in place, without SQLite's batch table rebuild (a rebuild of `compositions`
  would null the composition ids that lineage edges and evaluations keep).
- `api_keys`: the unique constraint on `name` becomes a unique index over active keys only, so a
  revoked key's name can be given to a new key (the old row, and what it stored, stay revoked).
- `web_sessions`: one row per web sign-in, by an API key (`api_key_id`) or through single sign-on
  (`principal` `user:<sub>` and the token's `groups`); sign-out revokes it, so a replayed cookie is
  refused.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_trust"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ACTIVE = sa.text("revoked_at IS NULL")


def upgrade() -> None:
    op.add_column("compositions", sa.Column("api_key_id", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE compositions SET api_key_id = "
        "(SELECT api_keys.id FROM api_keys WHERE api_keys.name = compositions.principal) "
        "WHERE trigger = 'api'"
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_constraint("uq_api_keys_name", type_="unique")
        batch_op.create_index(
            "uq_api_keys_active_name", ["name"], unique=True, postgresql_where=ACTIVE, sqlite_where=ACTIVE
        )
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("principal", sa.String(length=128), nullable=False),
        sa.Column("api_key_id", BigId, nullable=True),
        sa.Column("groups", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_web_sessions_api_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_sessions")),
    )
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_web_sessions_api_key_id"), ["api_key_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_web_sessions_expires_at"), ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_table("web_sessions")
    # Names reused after a revocation cannot all stay unique: the revoked duplicates are renamed first.
    op.execute(
        "UPDATE api_keys SET name = name || '~' || CAST(id AS VARCHAR(20)) "
        "WHERE revoked_at IS NOT NULL AND name IN "
        "(SELECT name FROM api_keys GROUP BY name HAVING COUNT(*) > 1)"
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index("uq_api_keys_active_name")
        batch_op.create_unique_constraint("uq_api_keys_name", ["name"])
    op.drop_column("compositions", "api_key_id")
