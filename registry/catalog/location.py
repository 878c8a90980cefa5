"""Where this machine's catalog is, read from the environment without pydantic-settings.

registry.settings.Settings is the full configuration (every PEMREG_ variable, validated); importing it
costs the CLI ~0.15 s. A catalog read needs three of its values (the database URL, its limits and the
acting principal), so `pemreg adapters list` reads them here. The defaults and the URL rule live here
and Settings uses them, so both read the same catalog.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME = Path("~/.pemreg").expanduser()

# When one of these is set, the full Settings reads (and validates) it.
LIMIT_VARS = (
    "PEMREG_DB_CONNECT_TIMEOUT_SECONDS",
    "PEMREG_DB_STATEMENT_TIMEOUT_SECONDS",
    "PEMREG_DB_POOL_TIMEOUT_SECONDS",
    "PEMREG_DB_SQLITE_BUSY_TIMEOUT_SECONDS",
    "PEMREG_DB_POOL_SIZE",
    "PEMREG_DB_POOL_MAX_OVERFLOW",
    "PEMREG_DB_READ_POOL_SIZE",
)


@dataclass(frozen=True)
class DbLimits:
    """Every wait on the catalog is bounded (seconds). A database that is down fails at `connect`; one
    that accepts connections but never answers (frozen, partitioned) fails at `statement`, enforced
    on the client, since a frozen server cannot enforce its own statement_timeout; a pool drained by
    such waits fails at `pool`. `sqlite_busy` is how long SQLite waits for another writer's lock.

    Each process has two pools of PostgreSQL sessions. Catalog reads (lists, searches, lookups,
    lineage: every `connect()` of a CatalogSource) hold one of `read_pool_size` sessions, with no
    overflow: past them a read waits up to `pool`. Writes, key checks and background loops
    (heartbeats, deliveries, runs) keep `pool_size` sessions and open up to `pool_max_overflow` more
    (closed again when handed back). Reads are many, short and CPU-bound on the database: sessions
    beyond its cores only take turns on them, each turn a wait in the middle of a request, so a few
    sessions serve them faster than many (docs/scale.md); and a burst of them cannot take the
    sessions a heartbeat or a commit needs. SQLite has one pool for both."""

    connect: float = 3.0
    statement: float = 10.0
    pool: float = 5.0
    sqlite_busy: float = 30.0
    pool_size: int = 12
    pool_max_overflow: int = 8
    read_pool_size: int = 2


def default_principal() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers): still record something meaningful
        return "unknown"


def database_url(home: Path, url: str | None) -> str:
    """PEMREG_DATABASE_URL, else the embedded SQLite catalog under PEMREG_HOME."""
    return url or f"sqlite:///{home / 'registry.db'}"


def sqlite_file(url: str) -> str | None:
    """The file of a plain `sqlite:///path` URL, as `database_url` writes it (no driver or options, not
    in memory), else None."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or "?" in url or url.endswith(":memory:"):
        return None
    return url.removeprefix(prefix) or None


@dataclass(frozen=True)
class CatalogLocation:
    database_url: str
    limits: DbLimits
    principal: str
    home: Path = DEFAULT_HOME  # PEMREG_HOME: its cache/ keeps the local reads' compiled SQL

    @classmethod
    def from_env(cls) -> CatalogLocation:
        # pydantic-settings matches PEMREG_ names case-insensitively; so does this.
        env = {k.upper(): v for k, v in os.environ.items() if k.upper().startswith("PEMREG_")}
        if any(name in env for name in LIMIT_VARS):  # rare: let Settings validate them
            from registry.settings import get_settings

            s = get_settings()
            return cls(s.resolved_database_url, s.db_limits, s.principal, s.home)
        home = Path(env["PEMREG_HOME"]) if "PEMREG_HOME" in env else DEFAULT_HOME
        url = database_url(home, env.get("PEMREG_DATABASE_URL") or None)
        return cls(url, DbLimits(), env.get("PEMREG_PRINCIPAL") or default_principal(), home)
