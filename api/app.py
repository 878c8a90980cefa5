"""The REST API: `create_app(settings)` builds one FastAPI app over one Registry (catalog + store).

Run it with `pemreg serve` (uvicorn, 127.0.0.1:8000 by default); OpenAPI at /docs and /openapi.json.
"""

from __future__ import annotations

from fastapi import FastAPI

from registry.service import Registry
from registry.service.registration.uploads import multipart_limit
from registry.settings import Settings, get_settings

from . import docs_pages, errors, metrics, web
from .middleware import BodyLimitMiddleware, RequestIdMiddleware
from .routes import (
    adapters,
    audit,
    base_models,
    compositions,
    downloads,
    health,
    keys,
    lifecycle,
    methods,
    namespaces,
    register,
    webhooks,
)

DESCRIPTION = """Catalog, lineage and artifacts of LoRA / (IA)3 adapters.

Send `Authorization: Bearer <key>` (from `pemreg keys create`) or a JWT of the configured SSO issuer.
Global roles: reader, writer, admin (everything). Per namespace (grants): reader < writer (register,
aliases, compose into it, deprecate/archive/restore, tags) < maintainer (+ protected aliases, grants,
visibility, delete versions); admin also webhooks and /metrics. A namespace without grants keeps the
keys' global roles. A private namespace is invisible (404) to principals without a grant. Errors are
`{"detail": ..., "field": ..., "request_id": ...}`."""


def create_app(settings: Settings | None = None) -> FastAPI:
    app = FastAPI(title="PEM Registry", version="1", description=DESCRIPTION, docs_url=None, redoc_url=None)
    docs_pages.install(app)  # /docs and /redoc from the package's own files (no CDN)
    app.state.registry = Registry(settings or get_settings())
    from flows.runners import install  # compositions run through the runners this shell registers

    install(app.state.registry.settings, "background")
    errors.install(app)
    app.add_middleware(BodyLimitMiddleware, multipart_limit=multipart_limit(app.state.registry.settings))
    app.add_middleware(RequestIdMiddleware)  # the body limit's 413 carries the request id
    app.add_middleware(metrics.MetricsMiddleware)  # outermost: also counts the 500s and 413s answered above
    routers = (
        health,
        base_models,
        adapters,
        lifecycle,
        register,
        downloads,
        compositions,
        methods,
        audit,
        keys,
        webhooks,
        namespaces,
    )
    for module in (*routers, metrics):
        app.include_router(module.router)
    web.mount(app)  # the catalog pages at / (same auth, keys checked per request)
    return app
