"""Catalog read routes wait for one of the process's read sessions on the event loop, not in a thread.

A catalog read holds one of `PEMREG_DB_READ_POOL_SIZE` sessions (DbLimits) for nearly all of its time.
Run as FastAPI runs a sync route, 16 reads at once on a worker were 16 threads of which 2 had a session:
the others waited on the pool's lock, and every one that woke took its turn on the GIL with the event
loop and the two threads doing the work. Here a read first takes a token of a limiter sized to the read
pool (first come, first served, on the loop), and only then runs in a thread: no more reads run at once
in a process than it has read sessions. A read that waits longer than the pool timeout is answered as a
pool timeout was (503), so the wait stays bounded.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar
from sqlalchemy.engine import Engine
from sqlalchemy.exc import TimeoutError as PoolTimeout

from registry.service import Registry

P = ParamSpec("P")
R = TypeVar("R")

# Per event loop (a server worker's): one limiter per read pool, i.e. per read engine, with the pool's
# timeout (both from the DbLimits the engine was made with, read once).
_LIMITERS: RunVar[dict[Engine, tuple[anyio.CapacityLimiter, float]]] = RunVar("pemreg_catalog_reads")


def _limiter(source: Registry) -> tuple[anyio.CapacityLimiter, float]:
    try:
        limiters = _LIMITERS.get()
    except LookupError:
        limiters = {}
        _LIMITERS.set(limiters)
    engine = source.read_engine
    found = limiters.get(engine)
    if found is None:
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
        try:
            with anyio.fail_after(timeout):
                await limiter.acquire()
        except TimeoutError:
            raise PoolTimeout(f"no catalog read session free within {timeout:g} s") from None
        try:
            return await anyio.to_thread.run_sync(functools.partial(route, *args, **kwargs))
        finally:
            limiter.release()

    return run
