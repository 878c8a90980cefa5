"""Liveness and readiness, open to anyone (load balancers carry no keys)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.deps import base_registry
from api.schemas import Health

router = APIRouter(tags=["health"])
log = logging.getLogger("pemreg.api")


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health, "description": "not ready"}})
def readyz(request: Request) -> JSONResponse:
    """The catalog answers a query and the store answers a listing; each check says why not."""
    reg = base_registry(request)
    checks: dict[str, str] = {}
    try:
        with reg.sessions() as session:
            session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any failure means not ready; the reason is for operators
        log.warning("readyz: database: %s", exc)
        checks["database"] = f"unreachable: {type(exc).__name__}"
    try:
        reg.store.ping()
        checks["store"] = "ok"
    except Exception as exc:
        log.warning("readyz: store: %s", exc)
        checks["store"] = f"unreachable: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    body = Health(status="ok" if ok else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)
