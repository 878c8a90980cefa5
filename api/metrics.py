"""Request metrics and GET /metrics (Prometheus text format).

The middleware labels each request with its route template (`/v1/adapters/{ns}/{name}`, never the raw
path, so labels stay few), or `unmatched` when no route took it; it counts when the answer's last byte
is sent, so a streamed download is timed whole. /metrics needs an admin key unless
PEMREG_METRICS_PUBLIC=true (401 without a key, 403 for another role).
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import authorize, base_registry, bearer
from registry.service.admin import metrics
from registry.service.events.deliveries import pending_count

router = APIRouter(include_in_schema=False)


class MetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        metrics.enable()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets when the app fails before answering

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            metrics.http_request(scope.get("method", "GET"), route, status, time.perf_counter() - started)


@router.get("/metrics")
def metrics_endpoint(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Response:
    reg = base_registry(request)
    if not reg.settings.metrics_public:
        authorize(request, credentials, "admin")
    body, content_type = metrics.exposition(lambda: pending_count(reg))
    return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})
