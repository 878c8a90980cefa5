"""Python client of a PEM Registry server: `Client(url, api_key)`.

    from registry.client import Client
    with Client("http://127.0.0.1:8000", api_key) as c:
        v = c.register("./my-lora", "acme/math", task="math")
        for adapter in c.iter_adapters(task="math"):
            print(adapter.name, adapter.latest_version)
        c.download("acme/math@1", "./out")

Typed results (pydantic), server errors as exceptions (registry.client.errors). Imports neither torch,
Prefect, peft nor SQLAlchemy.
"""

from .client import Client
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

__all__ = [
    "Client",
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
