"""Catalog read routes queue for one of their process's read sessions on the event loop
(api/routes/reads.py), not in the thread pool: a burst of reads that cannot get a session leaves the
threads to every other request, the reads are answered once sessions free, and a read that waits past
the pool timeout is answered 503. PostgreSQL is made slow for real: another session holds a lock on
`adapters`, so each read that reaches it waits there until the lock goes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from api.app import create_app
from api.deps import Reader
from api.routes.reads import catalog_read
from registry.service import Registry
from registry.service.admin.keys import create_key
from registry.service.registration.base_reads import list_base_models
from registry.settings import Settings
from tests.pg_service import truncate_all

pytestmark = pytest.mark.postgres

# More reads at once than the thread pool has threads (anyio's default: 40).
BURST = 45


def _settings(pg_url: str, tmp_path: Path, *, read_sessions: int, pool_timeout: float) -> Settings:
    return Settings(
        home=tmp_path / "home",
        database_url=pg_url,
        artifact_store=(tmp_path / "artifacts").as_uri(),
        principal="reads",
        db_read_pool_size=read_sessions,
        db_pool_timeout_seconds=pool_timeout,
    )


@pytest.fixture
def dsn(pg_url: str) -> Iterator[str]:
    yield make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)
    truncate_all(pg_url)


def _waiting_on_lock(dsn: str) -> int:
    """Sessions of this database waiting for a lock (the reads that reached PostgreSQL)."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'"
        ).fetchone()
    return int(row[0]) if row else 0


def _until(check: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not check():  # type: ignore[operator]
        time.sleep(0.05)


def test_a_burst_of_reads_waits_for_sessions_without_taking_the_threads(
    pg_url: str, dsn: str, tmp_path: Path
) -> None:
    settings = _settings(pg_url, tmp_path, read_sessions=2, pool_timeout=30.0)
    reg = Registry(settings)
    reg.store.ensure_ready()
    headers = {"Authorization": f"Bearer {create_key(reg, 'reads-reader', 'reader')}"}
    with TestClient(create_app(settings)) as client, ThreadPoolExecutor(BURST) as pool:
        assert client.get("/v1/adapters", headers=headers).status_code == 200  # sessions open, key known
        with psycopg.connect(dsn) as locker:
            locker.execute("LOCK TABLE adapters IN ACCESS EXCLUSIVE MODE")  # held until the rollback
            reads = [pool.submit(client.get, "/v1/adapters", headers=headers) for _ in range(BURST)]
            _until(lambda: _waiting_on_lock(dsn) >= 2, 10.0)
            time.sleep(0.5)  # room for more reads to reach PostgreSQL, were any let through
            assert _waiting_on_lock(dsn) == 2  # one per read session; the other reads wait on the loop

            # A route that runs in the thread pool still gets a thread at once. Had the reads waited
            # for their sessions in threads, all 40 would be taken until the pool timeout (30 s).
            started = time.monotonic()
            assert client.get("/healthz").status_code == 200
            assert time.monotonic() - started < 3.0
            assert not any(r.done() for r in reads)
            locker.rollback()
        statuses = [r.result(timeout=60).status_code for r in reads]
    assert statuses == [200] * BURST


def test_a_read_that_waits_past_the_pool_timeout_is_a_503(pg_url: str, dsn: str, tmp_path: Path) -> None:
    settings = _settings(pg_url, tmp_path, read_sessions=1, pool_timeout=1.0)
    reg = Registry(settings)
    reg.store.ensure_ready()
    headers = {"Authorization": f"Bearer {create_key(reg, 'reads-waiter', 'reader')}"}
    with TestClient(create_app(settings)) as client, ThreadPoolExecutor(2) as pool:
        assert client.get("/v1/adapters", headers=headers).status_code == 200
        with psycopg.connect(dsn) as locker:
            locker.execute("LOCK TABLE adapters IN ACCESS EXCLUSIVE MODE")
            first = pool.submit(client.get, "/v1/adapters", headers=headers)
            _until(lambda: _waiting_on_lock(dsn) >= 1, 10.0)
            started = time.monotonic()
            second = client.get("/v1/adapters?q=anything", headers=headers)
            waited = time.monotonic() - started
            assert second.status_code == 503, second.text
            assert second.headers.get("retry-after")
            assert 0.9 <= waited < 3.0  # the pool timeout, then the answer
            locker.rollback()
        assert first.result(timeout=30).status_code == 200  # the read that had the session


def test_a_read_hands_its_session_back_before_its_response_is_built(
    pg_url: str, dsn: str, tmp_path: Path
) -> None:
    """The token is the session: once a read's session is back in the pool, the next read goes, while
    the first still builds its answer (here: waits on a gate after reading)."""
    settings = _settings(pg_url, tmp_path, read_sessions=1, pool_timeout=2.0)
    reg = Registry(settings)
    reg.store.ensure_ready()
    headers = {"Authorization": f"Bearer {create_key(reg, 'reads-early', 'reader')}"}
    app = create_app(settings)
    read_done, gate = threading.Event(), threading.Event()

    @app.get("/test/read-then-wait")
    @catalog_read
    def read_then_wait(caller: Reader) -> dict[str, int]:
        bases = list_base_models(caller.reg)  # takes the one read session and hands it back
        read_done.set()
        gate.wait(20)  # the rest of the route: no session held
        return {"bases": len(bases)}

    with TestClient(app) as client, ThreadPoolExecutor(1) as pool:
        slow = pool.submit(client.get, "/test/read-then-wait", headers=headers)
        assert read_done.wait(20)
        started = time.monotonic()
        assert client.get("/v1/adapters", headers=headers).status_code == 200
        assert time.monotonic() - started < 1.5  # not the pool timeout (2 s), then a 503
        assert not slow.done()
        gate.set()
        assert slow.result(timeout=30).status_code == 200
