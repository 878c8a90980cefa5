"""PostgreSQL for tests: a fresh database per test session on the server `make test` ensures is up."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ADMIN_URL = os.environ.get(
    "PEMREG_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def create_database(prefix: str = "pemreg_test") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # the cause, loudly (pytest.exit in an xdist worker drops its tests silently)
        raise RuntimeError(
            f"cannot create a database on PostgreSQL at {ADMIN_URL} ({exc}); run the tests with `make test`"
        ) from exc
    finally:
        admin.dispose()
    return make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    from registry.catalog.db import dispose_engines

    dispose_engines()  # close pooled connections to it first
    name = make_url(url).database
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def truncate_all(url: str) -> None:
    from registry.catalog.db import get_engine
    from registry.catalog.models import Base

    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with get_engine(url).begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A database migrated to head, shared by the session; tests clean up with `clean_pg`."""
    from registry.catalog.migrate import upgrade

    url = create_database()
    upgrade(url)
    yield url
    drop_database(url)


@pytest.fixture
def fresh_pg_url() -> Iterator[str]:
    """An empty database of its own (for migration tests)."""
    url = create_database("pemreg_mig")
    yield url
    drop_database(url)
