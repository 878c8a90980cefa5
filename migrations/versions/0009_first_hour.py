"""base model identity by config fingerprint; a version's training record

Revision ID: 0009
Revises: 0008_trust
Create Date: 2026-12-06 15:00:00.000000

- `base_models.config` / `config_sha256`: the base's config.json as registered and its fingerprint
  (registry.base_evidence). An adapter whose `base_model_name_or_path` is a folder on the caller's
  machine is matched by the fingerprint (or the weights digest, now indexed) the caller computes,
  never by the path string, so the CLI, remote mode and REST give one verdict. Rows whose `source`
  is a folder readable here (where `pemreg init` runs: the machine that registered them) get their
  config filled in; other rows keep NULL (a hub id or s3:// source has no folder to read).
- `training_values`: a version's training record (metrics, params, dataset URIs given at
  registration), one row per entry so listings can filter on them with an index.
"""

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008_trust"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of registry.base_evidence's rule as of this revision (a migration must not change
# meaning when the application code does).
VOLATILE = {"_name_or_path", "transformers_version", "_commit_hash", "torch_dtype", "dtype"}


def _fingerprint(config: dict) -> str:
    kept = {k: v for k, v in config.items() if k not in VOLATILE}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _backfill() -> None:
    conn = op.get_bind()
    table = sa.table(
        "base_models",
        sa.column("id", sa.BigInteger),
        sa.column("source", sa.Text),
        sa.column("architecture", sa.String),
        sa.column("config", sa.JSON),
        sa.column("config_sha256", sa.String),
    )
    for row in conn.execute(sa.select(table.c.id, table.c.source, table.c.architecture)).all():
        source = row.source.removeprefix("file://")
        if "://" in source or not source.startswith("/"):
            continue
        try:
            config = json.loads((Path(source) / "config.json").read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(config, dict):
            continue
        archs = config.get("architectures") or [None]
        conn.execute(
            table.update()
            .where(table.c.id == row.id)
            .values(
                config=config,
                config_sha256=_fingerprint(config),
                architecture=row.architecture or archs[0],
            )
        )


def upgrade() -> None:
    # In place, no SQLite batch rebuild: adapters and merged models reference base_models.
    op.add_column("base_models", sa.Column("config", sa.JSON(), nullable=True))
    op.add_column("base_models", sa.Column("config_sha256", sa.String(length=64), nullable=True))
    op.create_index("ix_base_models_config_sha256", "base_models", ["config_sha256"])
    op.create_index("ix_base_models_sha256", "base_models", ["sha256"])
    _backfill()
    op.create_table(
        "training_values",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("version_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("value", sa.String(length=1024), nullable=False),
        sa.Column("number", sa.Float(), nullable=True),
        sa.CheckConstraint("kind IN ('metric', 'param', 'dataset')", name=op.f("ck_training_values_kind")),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["adapter_versions.id"],
            name=op.f("fk_training_values_version_id_adapter_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_values")),
        sa.UniqueConstraint(
            "version_id", "kind", "name", "value", name=op.f("uq_training_values_version_id_kind_name_value")
        ),
    )
    op.create_index("ix_training_values_version_id", "training_values", ["version_id"])
    op.create_index("ix_training_values_lookup", "training_values", ["kind", "name", "value"])
    op.create_index("ix_training_values_metric", "training_values", ["kind", "name", "number"])


def downgrade() -> None:
    op.drop_index("ix_training_values_metric", table_name="training_values")
    op.drop_index("ix_training_values_lookup", table_name="training_values")
    op.drop_index("ix_training_values_version_id", table_name="training_values")
    op.drop_table("training_values")
    op.drop_index("ix_base_models_sha256", table_name="base_models")
    op.drop_index("ix_base_models_config_sha256", table_name="base_models")
    op.drop_column("base_models", "config_sha256")
    op.drop_column("base_models", "config")
