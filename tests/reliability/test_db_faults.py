"""A database that is frozen (accepts, never answers) or down: every request comes back 503 with
Retry-After within the configured bounds, /readyz within 2 s, the CLI with one line, and the service
recovers when the database does. PostgreSQL is reached through a loopback proxy that can freeze."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from api.app import create_app
from registry.service import Registry
from registry.service.admin.keys import create_key
from registry.settings import Settings
from tests.pg_service import truncate_all
from tests.reliability.tcp_proxy import FreezableProxy

pytestmark = pytest.mark.postgres

CONNECT, STATEMENT, POOL = 1.0, 1.5, 1.0
# The slowest path: a pooled connection's statement (or the key lookup's) waits STATEMENT, a fresh
# connect waits CONNECT (libpq counts at least 2 s); the bound adds scheduling slack on 2 shared cores.
BOUND = STATEMENT + 2.0 + 2.0


@pytest.fixture
def proxied(pg_url: str, tmp_path: Path) -> Iterator[tuple[FreezableProxy, Settings, str]]:
    url = make_url(pg_url)
    with FreezableProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        settings = Settings(
            home=tmp_path / "home",
            database_url=url.set(port=proxy.port).render_as_string(hide_password=False),
            artifact_store=(tmp_path / "artifacts").as_uri(),
            principal="faults",
            db_connect_timeout_seconds=CONNECT,
            db_statement_timeout_seconds=STATEMENT,
            db_pool_timeout_seconds=POOL,
        )
        reg = Registry(settings)
        reg.store.ensure_ready()
        key = create_key(reg, "faults-reader", "reader")
        yield proxy, settings, key
        proxy.frozen.clear()
        proxy.down.clear()
    truncate_all(pg_url)


def _timed_get(client: TestClient, path: str, key: str) -> tuple[int, float, str | None]:
    started = time.monotonic()
    response = client.get(path, headers={"Authorization": f"Bearer {key}"})
    return response.status_code, time.monotonic() - started, response.headers.get("retry-after")


@pytest.mark.parametrize("fault", ["frozen", "down"])
def test_database_fault_gives_bounded_503(proxied: tuple[FreezableProxy, Settings, str], fault: str) -> None:
    proxy, settings, key = proxied
    with TestClient(create_app(settings)) as client:
        assert _timed_get(client, "/v1/adapters", key)[0] == 200  # pool warm, connections open
        if fault == "frozen":
            proxy.frozen.set()
        else:
            proxy.down.set()
            proxy.close_all()
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: _timed_get(client, "/v1/adapters", key), range(8)))
        statuses = [r[0] for r in results]
        slowest = max(r[1] for r in results)
        print(f"{fault}: statuses {statuses}, slowest {slowest:.2f} s (bound {BOUND} s)")
        assert statuses == [503] * 8
        assert slowest < BOUND
        assert all(r[2] is not None and int(r[2]) >= 1 for r in results)

        started = time.monotonic()
        ready = client.get("/readyz")
        took = time.monotonic() - started
        assert ready.status_code == 503 and ready.json()["checks"]["database"] != "ok"
        assert took < 2.0, took

        proxy.frozen.clear()
        proxy.down.clear()
        deadline = time.monotonic() + BOUND + 5
        status = 0
        while time.monotonic() < deadline and status != 200:
            status = _timed_get(client, "/v1/adapters", key)[0]
            time.sleep(0.2)
        assert status == 200, "the service did not recover with the database"


def test_cli_frozen_database_one_line(proxied: tuple[FreezableProxy, Settings, str]) -> None:
    proxy, settings, _ = proxied
    proxy.frozen.set()
    env = {
        **os.environ,
        "PEMREG_HOME": str(settings.home),
        "PEMREG_DATABASE_URL": settings.database_url or "",
        "PEMREG_ARTIFACT_STORE": settings.resolved_artifact_store,
        "PEMREG_DB_CONNECT_TIMEOUT_SECONDS": str(CONNECT),
        "PEMREG_DB_STATEMENT_TIMEOUT_SECONDS": str(STATEMENT),
    }
    env.pop("PEMREG_URL", None)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "api.cli.main", "adapters", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    took = time.monotonic() - started
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: catalog database unavailable"), done.stderr
    assert took < 15, took
