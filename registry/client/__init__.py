"""Python client of a PEM Registry server: `Client(url, api_key)`.

    from registry.client import Client
    with Client("http://127.0.0.1:8000", api_key) as c:
        v = c.register("./my-lora", "acme/math", task="math")
        for adapter in c.iter_adapters(task="math"):
            print(adapter.name, adapter.latest_version)
        c.download("acme/math@1", "./out")

Typed results (pydantic), server errors as exceptions (registry.client.errors). Imports neither torch,
Prefect, peft nor SQLAlchemy; httpx only when `Client` is first used (`ReadClient`, the read calls over
the standard library, never).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    ClientError,
    Conflict,
    Forbidden,
    IntegrityError,
    InvalidInput,
    NotFound,
    ServerError,
    ServerUnavailable,
    Unauthorized,
)

if TYPE_CHECKING:
    from .client import Client
    from .reads import ReadClient

__all__ = [
    "Client",
    "ReadClient",
    "ClientError",
    "Conflict",
    "Forbidden",
    "IntegrityError",
    "InvalidInput",
    "NotFound",
    "ServerError",
    "ServerUnavailable",
    "Unauthorized",
]


def __getattr__(name: str) -> Any:
    if name == "Client":
        from .client import Client

        return Client
    if name == "ReadClient":
        from .reads import ReadClient

        return ReadClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
