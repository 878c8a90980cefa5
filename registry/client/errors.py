"""What the server's error answers become: one exception class per kind, carrying `detail`, `field`,
the HTTP status and the request id. Each also subclasses the matching registry.errors type, so code
(and the `pemreg` CLI) that handles a local NotFound handles a remote one the same way."""

from __future__ import annotations

from typing import Any

from .. import errors as base


class ClientError(base.RegistryError):
    """Base of every error the client raises. `str(exc)` is the server's one-line `detail`."""

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        field: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.field = field
        self.request_id = request_id


class InvalidInput(ClientError, base.InvalidInput):
    """HTTP 400/413/415/422: `field` names the offending field when the server said."""


class Unauthorized(ClientError, base.Unauthenticated):
    """HTTP 401: no key, or an invalid or revoked one."""


class Forbidden(ClientError, base.PermissionDenied):
    """HTTP 403: the key's role does not allow this."""


class NotFound(ClientError, base.NotFound):
    """HTTP 404."""


class Conflict(ClientError, base.Conflict):
    """HTTP 409: contradicts existing state (e.g. deleting a version others descend from)."""


class ServerError(ClientError, base.StoreError):
    """HTTP 5xx other than 503 (the artifact store failed, or a server bug: see the request id)."""


class ServerUnavailable(ClientError):
    """HTTP 503, or the server could not be reached or did not answer in time."""


class IntegrityError(ClientError, base.IntegrityError):
    """Downloaded bytes do not match the recorded sha256 (the partial file is removed)."""


_BY_STATUS: dict[int, type[ClientError]] = {
    400: InvalidInput,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: InvalidInput,
    415: InvalidInput,
    422: InvalidInput,
    503: ServerUnavailable,
}


def from_response(status: int, body: Any, request_id: str | None = None) -> ClientError:
    detail = body.get("detail") if isinstance(body, dict) else None
    field = body.get("field") if isinstance(body, dict) else None
    request_id = (body.get("request_id") if isinstance(body, dict) else None) or request_id
    if not isinstance(detail, str):
        detail = f"HTTP {status}" + (f": {str(body)[:200]}" if body else "")
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else ClientError)
    return cls(detail, status=status, field=field, request_id=request_id)
