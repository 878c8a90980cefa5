"""Alembic environment: the URL comes from the Config (set by registry.catalog.migrate) or settings."""

from __future__ import annotations

from alembic import context

from registry.catalog.db import get_engine, normalize_url
from registry.catalog.models import Base, compared_on
from registry.settings import get_settings

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return normalize_url(config.get_main_option("sqlalchemy.url") or get_settings().resolved_database_url)


def run_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = get_engine(_url())
    with engine.connect() as conn:
        _run(conn)


def _run(connection) -> None:  # noqa: ANN001 - SQLAlchemy Connection
    # Batch mode makes ALTERs work on SQLite (copy-and-move); it is a no-op on PostgreSQL.
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
        include_object=compared_on(connection.dialect.name),
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
