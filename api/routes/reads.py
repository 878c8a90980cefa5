"""Catalog read routes wait for one of the process's read sessions on the event loop, not in a thread.

A catalog read holds one of `PEMREG_DB_READ_POOL_SIZE` sessions (DbLimits) for nearly all of its time.
Run as FastAPI runs a sync route, 16 reads at once on a worker were 16 threads of which 2 had a session:
the others waited on the pool's lock, and every one that woke took its turn on the GIL with the event
loop and the two threads doing the work. Here a read first takes a token of a limiter sized to the read
pool (first come, first served, on the loop), and only then runs in a thread: no more reads run at once
in a process than it has read sessions. A read that waits longer than the pool timeout is answered as a
pool timeout was (503), so the wait stays bounded.

The token is a read session, and is handed back when the session is: the read pool's checkin, in the
route's thread, schedules the release on the loop. Building the views and the response, and the hop
back to the loop, no longer keep the next read waiting (a token was held ~6.8 ms for ~4.5 ms of
session under 16 clients: docs/scale.md).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import TimeoutError as PoolTimeout

from registry.service import Registry

P = ParamSpec("P")
R = TypeVar("R")

# Per event loop (a server worker's): one limiter per read pool, i.e. per read engine, with the pool's
# timeout (both from the DbLimits the engine was made with, read once).
_LIMITERS: RunVar[dict[Engine, tuple[anyio.CapacityLimiter, float]]] = RunVar("pemreg_catalog_reads")
# In a catalog read's thread: what hands its token back (set by `catalog_read`, called on checkin).
_ON_CHECKIN: ContextVar[Callable[[], None] | None] = ContextVar("pemreg_read_token", default=None)


def _checked_in(_dbapi_connection: Any, _record: Any) -> None:
    release = _ON_CHECKIN.get()
    if release is not None:
        release()


def _limiter(source: Registry) -> tuple[anyio.CapacityLimiter, float]:
    try:
        limiters = _LIMITERS.get()
    except LookupError:
        limiters = {}
        _LIMITERS.set(limiters)
    engine = source.read_engine
    found = limiters.get(engine)
    if found is None:
        if not event.contains(engine.pool, "checkin", _checked_in):  # once per pool (kept by dispose)
            event.listen(engine.pool, "checkin", _checked_in)
        limits = source.settings.db_limits
        found = limiters[engine] = (anyio.CapacityLimiter(limits.read_pool_size), limits.pool)
    return found


def catalog_read(route: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """`route` (sync, with a `caller: Reader` parameter whose registry it reads through) run in a thread
    once a read session of its process is free. FastAPI reads the parameters from `route` itself."""
    if "caller" not in inspect.signature(route).parameters:
        raise TypeError(f"{route.__name__}: a catalog read route takes `caller`, whose registry it reads")

    @functools.wraps(route)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        source: Registry = kwargs["caller"].reg  # type: ignore[attr-defined]  # FastAPI passes by name
        limiter, timeout = _limiter(source)
        borrower = object()  # released by a loop callback, which is no task: tokens are the borrower's
        try:
            with anyio.fail_after(timeout):
                await limiter.acquire_on_behalf_of(borrower)
        except TimeoutError:
            raise PoolTimeout(f"no catalog read session free within {timeout:g} s") from None
        loop, held = asyncio.get_running_loop(), [True]

        def release() -> None:  # on the loop: CapacityLimiter is not thread-safe
            if held:
                held.clear()
                limiter.release_on_behalf_of(borrower)

        def hand_back() -> None:  # in the route's thread
            loop.call_soon_threadsafe(release)

        # The first checkin hands the token back (a route opening a second session then waits for it
        # in the pool, up to the pool timeout); at the latest the token goes back when the route ends.
        reset = _ON_CHECKIN.set(hand_back)
        try:
            return await anyio.to_thread.run_sync(functools.partial(route, *args, **kwargs))
        finally:
            _ON_CHECKIN.reset(reset)
            release()

    return run
