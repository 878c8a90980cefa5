"""Request ids and the last line of defence: unexpected errors are logged with the id, answered 500.

A plain ASGI middleware (not BaseHTTPMiddleware) so streamed downloads pass through untouched.
"""

from __future__ import annotations

import json
import logging
import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("pemreg.api")
HEADER = b"x-request-id"
# A caller's id is echoed only if it is short and plain (it ends up in logs).
_SAFE_ID = re.compile(rb"^[A-Za-z0-9._-]{1,64}$")


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(HEADER, b"")
        rid = given.decode() if _SAFE_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (HEADER, rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # The traceback goes to the log only; the client gets the id to quote, never internals.
            log.exception("request %s %s %s failed", rid, scope.get("method"), scope.get("path"))
            if started:
                raise  # mid-stream: nothing sane to send; the server closes the connection
            body = json.dumps(
                {"detail": "internal error; quote the request id to the operator", "request_id": rid}
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (HEADER, rid.encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
