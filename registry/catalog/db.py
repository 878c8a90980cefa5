"""Engine and session factory for the catalog (PostgreSQL or the embedded SQLite)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from .location import DbLimits

if TYPE_CHECKING:  # Core reads (the CLI's catalog commands) need an engine, never the ORM
    from sqlalchemy.orm import Session, sessionmaker


DEFAULT_LIMITS = DbLimits()


def _sqlite_pragmas(busy_ms: int, dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (see _sqlite_begin).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")  # readers don't block the writer (CLI + serve at once)
    cur.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    cur.close()


def normalize_url(url: str) -> str:
    """Plain `postgresql://` means the psycopg 3 driver we ship, not psycopg2."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _sqlite_begin(conn) -> None:  # noqa: ANN001 - SQLAlchemy Connection
    # IMMEDIATE takes the write lock up front: two read-then-write transactions (e.g. two CLI
    # registrations computing the next version) queue on busy_timeout instead of failing SQLITE_BUSY.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


# An execution option: run this statement unprepared, planned for its values each time. psycopg prepares
# a statement server-side after 5 executions, and PostgreSQL then may switch to one generic plan for all
# values; where the right plan depends on the values (a search term matching 10 adapters or 10,000), a
# generic plan is right for some and 10-50x slower for others.
PLAN_PER_VALUES = "pemreg_plan_per_values"


def _execute_unprepared(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
    if not context.execution_options.get(PLAN_PER_VALUES):
        return False
    cursor.execute(statement, parameters, prepare=False)
    return True


_engines: dict[tuple[str, DbLimits, bool], Engine] = {}
_engines_lock = threading.Lock()


def get_engine(url: str, limits: DbLimits = DEFAULT_LIMITS, *, reads: bool = False) -> Engine:
    """One engine (one pool) per URL and limits, however the caller spells them; with `reads`, the pool
    of catalog reads (DbLimits: on PostgreSQL its own sessions, on SQLite the same engine)."""
    normalized = normalize_url(url)
    reads = reads and make_url(normalized).get_backend_name() != "sqlite"
    key = (normalized, limits, reads)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = _create_engine(*key)
        return engine


def _create_engine(url: str, limits: DbLimits, reads: bool) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": limits.sqlite_busy})
        event.listen(engine, "connect", partial(_sqlite_pragmas, int(limits.sqlite_busy * 1000)))
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    engine = create_engine(
        url,
        # psycopg's connections are checked on checkout by their socket (pg_liveness), without the
        # SELECT 1 round trip pool_pre_ping costs every request; another driver keeps the ping.
        pool_pre_ping=parsed.get_driver_name() != "psycopg",
        # Kept connections: a connection over pool_size is closed when handed back, so a server worker
        # answering more requests at once than that opened a new PostgreSQL session for every few
        # requests (16 clients on `serve --workers 2`: one session per ~3 requests at pool_size 5);
        # each new session costs a backend start and re-plans every statement. Reads have a few sessions
        # of their own and no overflow (DbLimits). Sized by the operator (PEMREG_DB_POOL_SIZE,
        # PEMREG_DB_POOL_MAX_OVERFLOW, PEMREG_DB_READ_POOL_SIZE; docs/scale.md).
        pool_size=limits.read_pool_size if reads else limits.pool_size,
        max_overflow=0 if reads else limits.pool_max_overflow,
        pool_timeout=limits.pool,
        connect_args={
            # libpq counts whole seconds, at least 2; psycopg enforces it over the whole handshake.
            "connect_timeout": max(2, round(limits.connect)),
            # The server cancels a slow statement itself while it still can.
            "options": f"-c statement_timeout={int(limits.statement * 1000)}",
        },
    )
    if parsed.get_driver_name() == "psycopg":
        from .pg_liveness import check_on_checkout
        from .pg_timeout import bounded_connect

        event.listen(engine, "do_connect", partial(bounded_connect, limits.statement))
        event.listen(engine, "do_execute", _execute_unprepared)
        event.listen(engine, "checkout", check_on_checkout)
    return engine


def read_connection(engine: Engine) -> Connection:
    """A connection for catalog reads. On PostgreSQL in autocommit: READ COMMITTED takes a snapshot per
    statement inside a transaction too, so a read gains nothing from BEGIN and ROLLBACK but pays their
    round trips (the isolation level is a client-side flag of psycopg, reset when the connection goes
    back to the pool). SQLite keeps its transaction (the WAL snapshot covers the whole read)."""
    conn = engine.connect()
    if engine.dialect.name == "postgresql":
        conn.execution_options(isolation_level="AUTOCOMMIT")
    return conn


def dispose_engines() -> None:
    """Close every pooled connection (before dropping a database); the engines stay usable."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()


def session_factory(url: str, limits: DbLimits = DEFAULT_LIMITS) -> sessionmaker[Session]:
    from sqlalchemy.orm import sessionmaker

    engine = get_engine(url, limits)
    if engine.dialect.name == "sqlite":  # ORM rows read back from SQLite are UTC-aware (Core: tables.utc)
        from .sqlite_tz import install

        install()
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with factory() as session, session.begin():
        yield session
