"""A client-side bound on every PostgreSQL round trip.

A frozen server (SIGSTOP, a stalled network path) keeps its TCP connection open, and the kernel keeps
acknowledging our bytes, so neither libpq's connect_timeout (already connected) nor the server's own
statement_timeout (it is not running) ever fires: psycopg would wait forever. Every psycopg wait goes
through `Connection.wait`, which accepts a timeout; this connection class always passes one, and a
connection that timed out is closed (its protocol state is unknown), so the pool discards it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import psycopg
from psycopg import errors


class BoundedConnection(psycopg.Connection[Any]):
    max_wait: float = 10.0

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        try:
            return super().wait(gen, interval=interval, timeout=timeout or self.max_wait)
        except errors._WaitTimeout:  # psycopg's own signal for "gen did not finish in time"
            self.pgconn.finish()
            raise psycopg.OperationalError(
                f"the database did not answer within {self.max_wait:g} s; connection closed"
            ) from None


@lru_cache(maxsize=8)
def _connection_class(max_wait: float) -> type[BoundedConnection]:
    return type("BoundedConnection", (BoundedConnection,), {"max_wait": max_wait})


def bounded_connect(max_wait: float, _dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
    """SQLAlchemy `do_connect` hook: open the DB-API connection as a BoundedConnection."""
    return _connection_class(max_wait).connect(*cargs, **cparams)
