"""Registry errors -> HTTP statuses, one JSON error body, and the responses documented in OpenAPI."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DataError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from registry.errors import (
    Busy,
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    RegistryError,
    StoreError,
    Unauthenticated,
)
from registry.service.access.policy import Refusal
from registry.service.registration.uploads import UploadTooLarge

log = logging.getLogger("pemreg.api")


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer: `detail` is one line naming the field or object; `field` when known."""

    detail: str
    field: str | None = None
    request_id: str | None = None
    errors: list[dict[str, Any]] | None = None  # FastAPI's per-field validation errors, when several


def _doc(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


# Documented on every /v1 route, so clients (and schemathesis) know the error shape.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _doc("malformed request body (not parseable)"),
    401: _doc("missing or invalid API key or token"),
    403: _doc("the principal's role (global, or in the namespace) does not allow this"),
    404: _doc("no such object"),
    409: _doc("conflicts with existing state"),
    413: _doc("body over its limit (uploads: PEMREG_MAX_UPLOAD_BYTES; specs: 64 KiB; others: 256 KiB)"),
    422: _doc("invalid input; `field` names it"),
    502: _doc("the artifact store failed"),
    503: {
        **_doc("the catalog or the store is unreachable, or the composition queue is full"),
        "headers": {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}},
    },
}


class UnsupportedMediaType(InvalidInput):
    """The request body is in a format the route does not take (HTTP 415)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field="content-type")


_STATUS: list[tuple[type[RegistryError], int]] = [
    (InvalidInput, 422),
    (NotFound, 404),
    (Conflict, 409),
    (Unauthenticated, 401),
    (PermissionDenied, 403),
    (StoreError, 502),
    (Busy, 503),
]


BUSY_RETRY_AFTER_SECONDS = 5  # a queued composition takes seconds, not minutes, to make room


def request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def error_response(
    request: Request,
    status: int,
    detail: str,
    field: str | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    body = ErrorBody(detail=detail, field=field, request_id=request_id(request), errors=errors)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)


def status_of(exc: RegistryError) -> int:
    if isinstance(exc, UploadTooLarge):
        return 413
    if isinstance(exc, UnsupportedMediaType):
        return 415
    return next((code for cls, code in _STATUS if isinstance(exc, cls)), 500)


def refusal_audit(request: Request, exc: Exception) -> BackgroundTask | None:
    """A refused write is an audit event (who, what, why), written after the answer is sent: the
    refused transaction has rolled back, and the answer takes as long whether or not an event is due
    (a write into a namespace one cannot see answers as a missing object does, at the same speed)."""
    refusal = getattr(exc, "refusal", None)
    if not isinstance(refusal, Refusal):
        return None
    from registry.service.catalog.audit import record_refusal

    def write() -> None:
        try:
            record_refusal(request.app.state.registry, refusal)
        except Exception as err:  # noqa: BLE001 - the answer is sent; the log says what was lost
            log.error("could not audit a refused write (%s): %s", refusal, err)

    return BackgroundTask(write)


async def _registry_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RegistryError)
    status = status_of(exc)
    if status >= 500:
        # Store trouble is the operator's to fix: log it with the request id; the message is already one
        # line naming the store, without credentials.
        log.warning("request %s: %s: %s", request_id(request), type(exc).__name__, exc)
    response = error_response(request, status, str(exc), getattr(exc, "field", None))
    response.background = refusal_audit(request, exc)
    if isinstance(exc, Busy):
        response.headers["Retry-After"] = str(BUSY_RETRY_AFTER_SECONDS)
    return response


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in exc.errors()
    ]
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    loc = [str(p) for p in first["loc"]]
    # loc is e.g. ["query", "limit"] or ["body", "name"]; the last part names the field.
    field = loc[-1] if loc else None
    return error_response(request, 422, f"{'.'.join(loc) or 'request'}: {first['msg']}", field, errors)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    response = error_response(request, exc.status_code, detail, getattr(exc, "field", None))
    for key, value in (exc.headers or {}).items():
        response.headers[key] = value
    if exc.status_code == 405:
        # Starlette names only the first route whose path matched; a path served by several routes
        # (GET and POST /v1/adapters live in two routers) allows the union.
        response.headers["Allow"] = ", ".join(allowed_methods(request))
    return response


def allowed_methods(request: Request) -> list[str]:
    """The methods some route fully matches for this path, asked through Starlette's own matching (routes
    of included routers are not listed flat on the app)."""
    methods = []
    for method in ("DELETE", "GET", "PATCH", "POST", "PUT"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            methods.append(method)
    return methods


def retry_after_seconds(request: Request) -> int:
    """How long a client should wait: the connect timeout, the time a restarted database needs to be
    told apart from a down one."""
    registry = getattr(request.app.state, "registry", None)
    seconds = getattr(getattr(registry, "settings", None), "db_connect_timeout_seconds", 3.0)
    return max(1, math.ceil(seconds))


async def _db_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # Down (refused), frozen (our client-side wait bound), or the pool drained by such waits.
    first = str(exc).splitlines()[0] if str(exc) else ""
    log.error("request %s: catalog unavailable: %s: %s", request_id(request), type(exc).__name__, first)
    response = error_response(request, 503, "catalog database unavailable; retry later")
    response.headers["Retry-After"] = str(retry_after_seconds(request))
    return response


async def _data_error(request: Request, exc: Exception) -> JSONResponse:
    # The database refused a value (too long for its column, out of range): bad input, not a crash.
    # Routes validate the known limits first; this is the backstop for any we missed.
    log.warning("request %s: catalog refused a value: %s", request_id(request), str(exc).splitlines()[0])
    return error_response(request, 422, "a value is too long or out of range for the catalog")


def install(app: FastAPI) -> None:
    app.add_exception_handler(RegistryError, _registry_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OperationalError, _db_unavailable)
    app.add_exception_handler(InterfaceError, _db_unavailable)
    app.add_exception_handler(PoolTimeout, _db_unavailable)
    app.add_exception_handler(DataError, _data_error)
