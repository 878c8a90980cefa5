"""`pemreg serve --workers N`: the shared listening socket yields connections with Nagle off."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import uvicorn
from uvicorn.loops.auto import auto_loop_factory

from api.cli.serve import tcp_socket


def _nodelay_of_accepted(
    sock: socket.socket, loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
) -> int:
    async def main() -> int:
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            conn = writer.get_extra_info("socket")
            seen.set_result(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(handle, sock=sock)
        _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        try:
            return await asyncio.wait_for(seen, timeout=10)
        finally:
            writer.close()
            server.close()
            await server.wait_closed()

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(main())


def test_worker_socket_is_tcp_and_accepted_connections_have_nodelay():
    config = uvicorn.Config("api.app:create_app", factory=True, host="127.0.0.1", port=0, workers=2)
    sock = tcp_socket(config.bind_socket())
    assert sock.family == socket.AF_INET and sock.proto == socket.IPPROTO_TCP
    assert _nodelay_of_accepted(sock) != 0


def test_serve_runs_on_uvloop_with_nodelay():
    """uvicorn's `auto` loop is uvloop when it is installed (a dependency: less CPU per request than
    asyncio's loop); its accepted connections on the shared socket have Nagle off too."""
    import uvloop

    factory = auto_loop_factory()
    loop = factory()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()
    config = uvicorn.Config("api.app:create_app", factory=True, host="127.0.0.1", port=0, workers=2)
    assert _nodelay_of_accepted(tcp_socket(config.bind_socket()), factory) != 0
