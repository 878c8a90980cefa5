"""Request ids, body limits, and the last line of defence: unexpected errors are logged with the id,
answered 500.

Plain ASGI middlewares (not BaseHTTPMiddleware) so streamed downloads pass through untouched.
"""

from __future__ import annotations

import json
import logging
import random
import re

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("pemreg.api")
HEADER = b"x-request-id"
# A caller's id is echoed only if it is short and plain (it ends up in logs).
_SAFE_ID = re.compile(rb"^[A-Za-z0-9._-]{1,64}$")


def _new_id() -> str:
    """32 hex digits, as uuid4().hex, without its system call: os.urandom lets go of the GIL, and the
    event loop then waited for a busy route thread to hand it back (up to the 5 ms switch interval) on
    every request (~6% of a loaded worker's busy samples). An id is for quoting, not a secret;
    `random` is seeded from the OS in each process (and again after a fork)."""
    return f"{random.getrandbits(128):032x}"


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(HEADER, b"")
        rid = given.decode() if _SAFE_ID.match(given) else _new_id()
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


# A parser must never be handed megabytes to chew on the server's time. Composition specs (JSON or
# YAML, the bodies a parser works hardest on): 64 KiB. Every other non-multipart body (JSON requests,
# web forms, anything else): 256 KiB, room for a description at its 16384-character limit even when
# each character is JSON-escaped as a surrogate pair (12 bytes).
SPEC_LIMIT = 64 * 1024
BODY_LIMIT = 256 * 1024
SPEC_PATHS = ("/v1/compositions",)
MULTIPART = b"multipart/form-data"


class BodyTooLarge(HTTPException):
    """Raised from `receive` once a streamed body passes its limit: an HTTPException, so that FastAPI's
    own body reading lets it through (it turns other errors into 400), answered 413 naming `body`."""

    field = "body"

    def __init__(self, detail: str) -> None:
        super().__init__(413, detail)


class BodyLimitMiddleware:
    """Refuses a body over its content type's limit with 413 before any route parses it: at once from
    `Content-Length`, else as soon as the streamed bytes pass the limit (chunked bodies). Multipart
    uploads get `multipart_limit` (the upload limit plus room for the form); routes check their parts."""

    def __init__(self, app: ASGIApp, multipart_limit: int) -> None:
        self.app = app
        self.multipart_limit = multipart_limit

    def limit_for(self, path: str, content_type: bytes) -> tuple[int, str]:
        """(limit, what it is called in the refusal)."""
        if content_type.lower().startswith(MULTIPART):
            return self.multipart_limit, "multipart upload"
        if path.startswith(SPEC_PATHS):
            return SPEC_LIMIT, "spec"
        return BODY_LIMIT, "body"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        content_type = headers.get(b"content-type", b"")
        limit, kind = self.limit_for(scope.get("path", ""), content_type)
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > limit:
            await _too_large(
                scope, send, f"body: {int(length)} bytes exceed the {kind} limit of {limit} bytes"
            )
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(f"body: larger than the {kind} limit of {limit} bytes")
            return message

        await self.app(scope, counted, send)


async def _too_large(scope: Scope, send: Send, detail: str) -> None:
    rid = scope.get("state", {}).get("request_id")
    body = json.dumps({"detail": detail, "field": "body", **({"request_id": rid} if rid else {})}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    # The client may still be sending: tell it the connection ends here rather than read the rest.
    headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
