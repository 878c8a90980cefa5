"""The REST API: `create_app(settings)` builds one FastAPI app over one Registry (catalog + store).

Run it with `pemreg serve` (uvicorn, 127.0.0.1:8000 by default); OpenAPI at /docs and /openapi.json.
"""

from __future__ import annotations

from fastapi import FastAPI

from registry.service import Registry
from registry.service.registration.uploads import multipart_limit
from registry.settings import Settings, get_settings

from . import errors, web
from .middleware import BodyLimitMiddleware, RequestIdMiddleware
from .routes import adapters, audit, base_models, compositions, downloads, health, keys, lifecycle, register

DESCRIPTION = """Catalog, lineage and artifacts of LoRA / (IA)3 adapters.

Send `Authorization: Bearer <key>` (from `pemreg keys create`). Roles: reader (GET), writer (+ register,
alias, compose, deprecate/archive/restore, tags), admin (+ keys, delete). Errors are
`{"detail": ..., "field": ..., "request_id": ...}`."""


def create_app(settings: Settings | None = None) -> FastAPI:
    app = FastAPI(title="PEM Registry", version="1", description=DESCRIPTION)
    app.state.registry = Registry(settings or get_settings())
    from flows.runners import install  # compositions run through the runners this shell registers

    install(app.state.registry.settings, "background")
    errors.install(app)
    app.add_middleware(BodyLimitMiddleware, multipart_limit=multipart_limit(app.state.registry.settings))
    app.add_middleware(RequestIdMiddleware)  # outermost: the body limit's 413 carries the request id
    for module in (health, base_models, adapters, lifecycle, register, downloads, compositions, audit, keys):
        app.include_router(module.router)
    web.mount(app)  # the catalog pages at / (same auth, keys checked per request)
    return app
