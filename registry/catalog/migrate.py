"""Run Alembic migrations programmatically (`pemreg init`, tests) from the installed package."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .db import normalize_url

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic is imported when a migration runs, not with this module: `pemreg init` is one CLI command
# among many, and importing alembic costs every other command ~0.4 s.


def alembic_config(database_url: str) -> Config:
    from alembic.config import Config

    import migrations

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    # '%' would be read as interpolation by configparser (e.g. in URL-encoded passwords).
    cfg.set_main_option("sqlalchemy.url", normalize_url(database_url).replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    from alembic import command

    command.downgrade(alembic_config(database_url), revision)
