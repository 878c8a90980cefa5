"""The catalog's connection pools are sized by the operator (PEMREG_DB_POOL_SIZE, PEMREG_DB_POOL_MAX_OVERFLOW,
PEMREG_DB_READ_POOL_SIZE): both readers of the configuration (the full Settings and the CLI's lean
CatalogLocation) build the same limits; a pool holds at most size + overflow PostgreSQL sessions (one
more request waits the configured pool timeout, then fails, never opening another); and catalog reads
have sessions of their own, so reads holding all of theirs do not stop a write."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.exc import TimeoutError as PoolTimeout

from registry import service
from registry.catalog.db import get_engine
from registry.catalog.location import CatalogLocation, DbLimits
from registry.service import Registry
from registry.service.access.namespace_reads import list_namespaces
from registry.service.access.namespaces import create_namespace
from registry.settings import Settings, get_settings
from tests.pg_service import truncate_all


@pytest.mark.parametrize(
    ("env", "sizes"),
    [
        ({}, (12, 8, 2)),
        (
            {"PEMREG_DB_POOL_SIZE": "3", "PEMREG_DB_POOL_MAX_OVERFLOW": "0", "PEMREG_DB_READ_POOL_SIZE": "5"},
            (3, 0, 5),
        ),
    ],
)
def test_both_configuration_readers_give_the_same_limits(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str], sizes: tuple[int, int, int]
) -> None:
    for name in [n for n in os.environ if n.upper().startswith("PEMREG_DB_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PEMREG_HOME", str(tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        limits = get_settings().db_limits
        assert (limits.pool_size, limits.pool_max_overflow, limits.read_pool_size) == sizes
        assert CatalogLocation.from_env().limits == limits
    finally:
        get_settings.cache_clear()


@pytest.mark.parametrize(
    ("field", "value"), [("db_pool_size", 0), ("db_pool_max_overflow", -1), ("db_read_pool_size", 0)]
)
def test_a_pool_size_out_of_range_is_refused_naming_it(tmp_path: Path, field: str, value: int) -> None:
    with pytest.raises(ValidationError, match=field):
        Settings(home=tmp_path, **{field: value})


@pytest.mark.postgres
def test_a_process_holds_at_most_size_plus_overflow_sessions(pg_url: str) -> None:
    limits = DbLimits(pool=0.5, pool_size=2, pool_max_overflow=1)
    engine = get_engine(pg_url, limits)
    held = [engine.connect() for _ in range(3)]
    try:
        pids = {c.execute(text("SELECT pg_backend_pid()")).scalar_one() for c in held}
        assert len(pids) == 3  # two kept sessions and one overflow session
        started = time.monotonic()
        with pytest.raises(PoolTimeout):
            engine.connect()
        assert 0.4 <= time.monotonic() - started < 3.0  # waited the pool timeout, then gave up
    finally:
        for conn in held:
            conn.close()
    # Handed back: the overflow session is closed, the two kept ones serve the next requests.
    assert engine.pool.checkedin() == 2  # type: ignore[attr-defined]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar_one() == 1
    engine.dispose()


@pytest.mark.postgres
def test_reads_holding_all_their_sessions_do_not_stop_a_write(pg_url: str, tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path,
        database_url=pg_url,
        principal="pools",
        db_pool_timeout_seconds=0.5,
        db_read_pool_size=1,
    )
    reg = Registry(settings)
    assert reg.read_engine is not reg.engine
    assert reg.read_engine.pool.size() == 1  # type: ignore[attr-defined]
    with reg.connect() as held:  # the one read session, busy
        held.execute(text("SELECT 1"))
        with pytest.raises(PoolTimeout):
            service.list_adapters(reg)  # a second read waits for it, then gives up
        create_namespace(reg, "pools-ns")  # a write: its own pool
    assert "pools-ns" in {n.name for n in list_namespaces(reg)}  # and reads go on once it is back
    truncate_all(pg_url)
