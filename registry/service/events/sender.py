"""One webhook POST, safe to aim at hosts an API caller chose.

- Only PEMREG_WEBHOOK_ALLOWED_HOSTS: the URL is checked before each attempt, and every address the
  host resolves to is checked at connect time (registry.service.events.hosts), so DNS cannot redirect
  a listed name to a private address; the connection goes to the address that was checked.
- No redirects (httpcore follows none; a 3xx is a failed attempt naming the Location).
- One deadline per attempt (PEMREG_WEBHOOK_TIMEOUT_SECONDS) over name resolution, connect, TLS,
  sending and every read: a receiver dripping bytes cannot hold a delivery slot longer.
- At most MAX_RESPONSE_BYTES of the answer are read; its start is kept for the delivery history.

httpcore (the transport under httpx) is used directly: its connection pool keeps connections alive
between deliveries, and its network backend is where the address check belongs.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import httpcore

from registry import __version__
from registry.errors import InvalidInput
from registry.service.events.deliveries import Result
from registry.service.events.hosts import AllowedHosts, BlockedAddress, check_address, check_url

MAX_RESPONSE_BYTES = 64 * 1024
KEEP_RESPONSE_CHARS = 1024
USER_AGENT = f"pemreg-webhooks/{__version__}"


class _Deadline(threading.local):
    at: float = float("inf")

    def remaining(self, timeout: float | None, exc: type[Exception]) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise exc("webhook attempt deadline reached")
        return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """Every read, write and TLS handshake waits at most until the current attempt's deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: _Deadline) -> None:
        self._inner, self._deadline = inner, deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._deadline.remaining(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._deadline.remaining(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        left = self._deadline.remaining(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, left), self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


_resolver = ThreadPoolExecutor(max_workers=4, thread_name_prefix="webhook-dns")


def _resolve(host: str, port: int, timeout: float) -> list[str]:
    """Addresses of `host` (an IP literal as is); getaddrinfo itself has no timeout, so it is waited
    for on a helper thread at most `timeout` seconds."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    future = _resolver.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        infos = future.result(timeout=timeout)
    except FutureTimeout:
        raise httpcore.ConnectTimeout(f"resolving {host} took longer than {timeout:.1f} s") from None
    except OSError as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class _GuardedBackend(httpcore.NetworkBackend):
    def __init__(self, allowed: AllowedHosts, deadline: _Deadline) -> None:
        self._allowed, self._deadline = allowed, deadline
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = _resolve(host, port, self._deadline.remaining(timeout, httpcore.ConnectTimeout))
        for address in addresses:  # every one, before any connection: a name is only as safe as all of them
            check_address(address, host, port, self._allowed)
        error: Exception | None = None
        for address in addresses:
            try:
                left = self._deadline.remaining(timeout, httpcore.ConnectTimeout)
                stream = self._inner.connect_tcp(address, port, left, local_address, socket_options)
                return _DeadlineStream(stream, self._deadline)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise BlockedAddress("unix sockets are never webhook targets")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def _describe(exc: Exception, timeout: float) -> str:
    if isinstance(exc, httpcore.TimeoutException):
        return f"timed out after {timeout:g} s ({type(exc).__name__})"
    if isinstance(exc, BlockedAddress):
        return f"blocked: {exc}"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:500]


class Sender:
    """Signed POSTs for one deliverer: a keep-alive pool shared by its threads."""

    def __init__(self, allowed: AllowedHosts, *, timeout: float, max_connections: int) -> None:
        self.allowed, self.timeout = allowed, timeout
        self._deadline = _Deadline()
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl.create_default_context(),
            max_connections=max_connections,
            keepalive_expiry=30.0,
            retries=0,
            network_backend=_GuardedBackend(allowed, self._deadline),
        )

    def close(self) -> None:
        self._pool.close()

    def post(self, url: str, headers: Mapping[str, str], body: bytes) -> Result:
        started = time.monotonic()

        def took() -> float:
            return (time.monotonic() - started) * 1000

        try:
            target = check_url(url, self.allowed)  # the operator may have narrowed the list since
        except InvalidInput as exc:
            return Result(None, took(), error=f"blocked: {exc}")
        host = f"[{target.host}]" if ":" in target.host else target.host
        default_port = {"http": 80, "https": 443}[target.scheme]
        request_headers = [
            (b"Host", (host if target.port == default_port else f"{host}:{target.port}").encode()),
            (b"User-Agent", USER_AGENT.encode()),
            (b"Content-Type", b"application/json"),
            (b"Content-Length", str(len(body)).encode()),
            *((k.encode(), v.encode()) for k, v in headers.items()),
        ]
        t = self.timeout
        self._deadline.at = started + t
        try:
            with self._pool.stream(
                "POST",
                target.url,
                headers=request_headers,
                content=body,
                extensions={"timeout": {"connect": t, "read": t, "write": t, "pool": t}},
            ) as response:
                status = response.status
                kept, size = bytearray(), 0
                for chunk in response.iter_stream():
                    size += len(chunk)
                    if len(kept) < KEEP_RESPONSE_CHARS:
                        kept += chunk[: KEEP_RESPONSE_CHARS - len(kept)]
                    if size >= MAX_RESPONSE_BYTES:
                        break  # the rest is never read; the connection is closed, not reused
                location = dict((k.lower(), v) for k, v in response.headers).get(b"location")
        except Exception as exc:  # noqa: BLE001 - any failure is this attempt's result, retried later
            return Result(None, took(), error=_describe(exc, t))
        finally:
            self._deadline.at = float("inf")
        text = kept.decode("utf-8", errors="replace")
        error = None
        if 300 <= status < 400:
            where = location.decode("latin-1")[:300] if location else "?"
            error = f"HTTP {status}: redirect to {where} not followed"
        return Result(status, took(), error=error, response=text or None)
