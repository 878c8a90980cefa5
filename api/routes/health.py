"""Liveness and readiness, open to anyone (load balancers carry no keys)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from api.deps import base_registry
from api.errors import retry_after_seconds
from api.schemas import Health
from registry.service import Registry

router = APIRouter(tags=["health"])
log = logging.getLogger("pemreg.api")


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    return Health(status="ok")


READY_WAIT = 1.5  # seconds per check, run side by side: /readyz answers within 2 s whatever hangs


def _database(reg: Registry) -> None:
    with reg.sessions() as session:
        session.execute(text("SELECT 1"))


async def _check(name: str, fn: Callable[[], None]) -> str:
    try:
        await asyncio.wait_for(run_in_threadpool(fn), READY_WAIT)
        return "ok"
    except TimeoutError:
        # The thread keeps waiting until the catalog's own statement bound ends it; the probe doesn't.
        log.warning("readyz: %s: no answer within %s s", name, READY_WAIT)
        return f"no answer within {READY_WAIT:g} s"
    except Exception as exc:  # any failure means not ready; the reason is for operators
        log.warning("readyz: %s: %s", name, exc)
        return f"unreachable: {type(exc).__name__}"


@router.get("/readyz", response_model=Health, responses={503: {"model": Health, "description": "not ready"}})
async def readyz(request: Request) -> JSONResponse:
    """The catalog answers a query and the store answers a listing; each check says why not."""
    reg = base_registry(request)
    database, store = await asyncio.gather(
        _check("database", lambda: _database(reg)), _check("store", reg.store.ping)
    )
    checks = {"database": database, "store": store}
    ok = all(v == "ok" for v in checks.values())
    body = Health(status="ok" if ok else "unavailable", checks=checks)
    headers = None if ok else {"Retry-After": str(retry_after_seconds(request))}
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503, headers=headers)
