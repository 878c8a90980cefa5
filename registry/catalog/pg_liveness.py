"""Pooled PostgreSQL connections are checked on checkout without a round trip.

`pool_pre_ping` sent `SELECT 1` before every checkout: one more round trip, and a statement for the
server to run, on every request. What it guards against is a connection whose backend is gone (a
restarted server, `pg_terminate_backend`, an idle timeout): the backend then sends its FATAL error and
closes the socket, so the socket of an idle connection turns readable. An idle connection has nothing
else to read (the pool's connections never LISTEN), so `poll` with no timeout (one system call) tells
a live connection from a dead one; a rare asynchronous message (a notice, a changed server parameter)
costs a reconnect, never an error.

What it does not see, as the ping did not either in time: a server that stopped answering without
closing the connection (frozen, a cut network path); pg_timeout.BoundedConnection bounds that.
"""

from __future__ import annotations

import select
from typing import Any

from sqlalchemy.exc import DisconnectionError


def check_on_checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
    """SQLAlchemy pool `checkout` hook: a connection that is closed, or whose socket has something to
    read, raises DisconnectionError, which makes the pool open a new connection in its place (and the
    caller never sees the old one)."""
    if dbapi_conn.closed:
        raise DisconnectionError("this pooled connection is closed")
    poller = select.poll()
    poller.register(dbapi_conn.pgconn.socket, select.POLLIN | select.POLLERR | select.POLLHUP)
    if poller.poll(0):
        raise DisconnectionError("the server closed this pooled connection")
