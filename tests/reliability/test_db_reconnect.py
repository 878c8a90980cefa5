"""Pooled connections whose backend is gone are replaced on checkout, with no ping round trip
(registry/catalog/pg_liveness.py): after the server ends every session of the catalog (as a restart
does), the very next requests succeed; a live pooled connection is kept, not reopened per checkout."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import make_url

from api.app import create_app
from registry.service import Registry
from registry.service.admin.keys import create_key
from registry.settings import Settings
from tests.pg_service import truncate_all

pytestmark = pytest.mark.postgres


@pytest.fixture
def served(pg_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, Registry, dict[str, str]]]:
    settings = Settings(
        home=tmp_path / "home",
        database_url=pg_url,
        artifact_store=(tmp_path / "artifacts").as_uri(),
        principal="reconnect",
    )
    reg = Registry(settings)
    reg.store.ensure_ready()
    headers = {"Authorization": f"Bearer {create_key(reg, 'reconnect-reader', 'reader')}"}
    with TestClient(create_app(settings)) as client:
        yield client, reg, headers
    truncate_all(pg_url)


def _backend_pid(reg: Registry) -> int:
    with reg.engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate_all_sessions(pg_url: str) -> int:
    """Ends every other session of the catalog's database and waits until each has exited (as a
    restarted server would have), so their sockets are closed before the next request."""
    dsn = make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    assert rows and all(r[0] for r in rows), rows
    return len(rows)


def test_requests_succeed_after_every_session_is_terminated(
    served: tuple[TestClient, Registry, dict[str, str]], pg_url: str
) -> None:
    client, _, headers = served

    def get(_: int) -> int:
        return client.get("/v1/adapters", headers=headers).status_code

    with ThreadPoolExecutor(6) as pool:  # several pooled connections, all idle afterwards
        assert list(pool.map(get, range(24))) == [200] * 24
    assert _terminate_all_sessions(pg_url) >= 2
    assert [get(i) for i in range(3)] == [200] * 3  # the first request after it too
    _terminate_all_sessions(pg_url)
    with ThreadPoolExecutor(6) as pool:
        assert list(pool.map(get, range(24))) == [200] * 24


def test_a_live_pooled_connection_is_kept(served: tuple[TestClient, Registry, dict[str, str]]) -> None:
    _, reg, _ = served
    reg.engine.dispose()  # one pooled connection from here on, checked out and in again
    first = _backend_pid(reg)
    assert [_backend_pid(reg) for _ in range(5)] == [first] * 5
