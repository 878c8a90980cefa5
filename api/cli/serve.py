"""`pemreg serve`: the REST API on uvicorn, bound to loopback unless told otherwise."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from registry.errors import InvalidInput


def serve(
    host: Annotated[str, typer.Option("--host", help="interface to bind; 0.0.0.0 exposes it")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1, help="processes")] = 1,
    log_level: Annotated[
        str, typer.Option("--log-level", help="uvicorn log level: critical | error | warning | info | debug")
    ] = "info",
) -> None:
    """Serve the REST API (OpenAPI at /docs) and deliver webhooks. Settings come from PEMREG_* as for
    every command."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from registry.service.admin import metrics
    from registry.service.admin.leftovers import at_start
    from registry.service.events.deliverer import start_delivering

    from .compositions import reconcile_at_start
    from .deps import registry

    # Bound first: a port in use is the command's one-line error before anything starts.
    sockets = worker_sockets(host, port, workers) if workers > 1 else []
    with contextlib.ExitStack() as stack:
        if workers > 1:
            stack.enter_context(shared_metrics_dir())
        metrics.enable()
        reconcile_at_start()
        at_start(registry())  # scratch folders, work folders and store uploads of processes that died
        # Webhook deliveries go out from this process (the supervisor under --workers N).
        stack.callback(start_delivering(registry()).stop)

        # A factory string, so --workers > 1 can import the app in each process.
        options: dict[str, Any] = {"factory": True, "host": host, "port": port, "log_level": log_level}
        if workers == 1:
            uvicorn.run("api.app:create_app", proxy_headers=False, **options)
            return
        config = uvicorn.Config("api.app:create_app", proxy_headers=False, workers=workers, **options)
        supervisor = _socket_per_worker() if sockets else Multiprocess
        if not sockets:
            sockets = [tcp_socket(config.bind_socket())]
        with contextlib.suppress(KeyboardInterrupt):  # as uvicorn.run: Ctrl-C is a normal stop
            supervisor(config, sockets=sockets).run()


@contextlib.contextmanager
def shared_metrics_dir() -> Iterator[None]:
    """prometheus_client's multiprocess mode for --workers N: every process (set before any imports
    prometheus_client) writes its samples under one fresh folder, which any process's /metrics reads.
    An operator's own PROMETHEUS_MULTIPROC_DIR is used as it is."""
    from registry.service.admin.metrics import MULTIPROC_ENV

    if os.environ.get(MULTIPROC_ENV):
        yield
        return
    folder = tempfile.mkdtemp(prefix="pemreg-metrics-")
    os.environ[MULTIPROC_ENV] = folder
    try:
        yield
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(folder, ignore_errors=True)


def worker_sockets(host: str, port: int, workers: int) -> list[socket.socket]:
    """One listening socket per worker, all bound to host:port with SO_REUSEPORT (Linux); [] elsewhere.

    Why: from one shared socket, the worker that wakes first accepts every pending connection (libuv
    accepts until none is left), so how keep-alive connections fall depends on timing. In one run of
    the catalog benchmark all sixteen clients landed on one of two workers (~80% of a core, the other
    idle); in others 8 and 8, or 2 and 14. Over sockets of one SO_REUSEPORT group the kernel spreads
    connections by their addresses and ports, so each worker gets a share whatever the timing. A
    socket receives connections only once its worker listens; the supervisor keeps it open, so a
    worker that dies leaves its queue to its replacement. Created with IPPROTO_TCP, so accepted
    connections get Nagle off (tcp_socket below).
    """
    if sys.platform != "linux" or not hasattr(socket, "SO_REUSEPORT"):
        return []  # elsewhere SO_REUSEPORT does not spread connections
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets: list[socket.socket] = []
    try:
        for _ in range(workers):
            sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            sock.set_inheritable(True)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise InvalidInput(
            f"--port: cannot listen on {host}:{port}: {exc.strerror or exc}", field="port"
        ) from None
    return sockets


def _socket_per_worker() -> type:
    from uvicorn.supervisors.multiprocess import Multiprocess, Process

    class SocketPerWorker(Multiprocess):
        """uvicorn's supervisor, with worker i listening on socket i of worker_sockets. A worker it
        starts later (one died, a reload, a TTIN) listens on all of them: it may stand in for any."""

        def init_processes(self) -> None:
            for sock in self.sockets:
                process = Process(self.config, [sock])
                process.start()
                self.processes.append(process)

    return SocketPerWorker


def tcp_socket(bound: socket.socket) -> socket.socket:
    """The same listening socket, with its protocol read from the kernel (IPPROTO_TCP).

    Why: uvicorn binds the shared socket of `--workers N` with protocol 0, accepted connections
    inherit that, and asyncio only turns Nagle's algorithm off (TCP_NODELAY) on sockets whose
    protocol is IPPROTO_TCP. With Nagle on, each keep-alive response (headers, then body) waits
    for the client's delayed ACK: measured 48 ms per request instead of 6 ms on loopback.
    """
    if bound.family not in (socket.AF_INET, socket.AF_INET6):
        return bound
    return socket.socket(fileno=bound.detach())


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
