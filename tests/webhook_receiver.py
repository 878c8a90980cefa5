"""A real webhook receiver on loopback for tests: an HTTP server thread that records every POST
(headers, body, when it started and ended) and answers as the test scripts it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Received:
    path: str
    headers: dict[str, str]  # lowercased names
    body: bytes
    started: float  # time.monotonic() at arrival
    ended: float = 0.0  # when the answer was sent

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    def json(self) -> Any:
        return json.loads(self.body)


# (request) -> (status, delay before answering in seconds)
Script = Callable[[Received], tuple[int, float]]


@dataclass
class Receiver:
    server: ThreadingHTTPServer
    received: list[Received] = field(default_factory=list)
    script: Script = lambda _r: (200, 0.0)  # noqa: E731
    lock: threading.Lock = field(default_factory=threading.Lock)
    in_flight: dict[str, int] = field(default_factory=dict)  # webhook-id -> attempts being answered now
    overlaps: list[str] = field(default_factory=list)  # ids seen twice at once

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def reset(self, script: Script | None = None, settle: float = 5.0) -> None:
        """Forget what was received, after the requests still being answered have ended (up to
        `settle` seconds): a request the sender gave up on (a timeout) is recorded when its scripted
        delay ends, and must not land in the next step's list."""
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline:
            with self.lock:
                if not any(self.in_flight.values()):
                    break
            time.sleep(0.02)
        with self.lock:
            self.received.clear()
            self.overlaps.clear()
            self.script = script or (lambda _r: (200, 0.0))

    def wait_for(
        self, count: int, timeout: float = 30.0, pred: Callable[[Received], bool] = lambda _r: True
    ) -> list[Received]:
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                got = [r for r in self.received if pred(r)]
            if len(got) >= count or time.monotonic() > deadline:
                return got
            time.sleep(0.05)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real receivers answer

        def log_message(self, *_args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length") or 0)
            item = Received(
                self.path,
                {k.lower(): v for k, v in self.headers.items()},
                self.rfile.read(length),
                time.monotonic(),
            )
            msg_id = item.headers.get("webhook-id", "")
            with receiver.lock:
                if receiver.in_flight.get(msg_id):
                    receiver.overlaps.append(msg_id)
                receiver.in_flight[msg_id] = receiver.in_flight.get(msg_id, 0) + 1
                script = receiver.script
            try:
                status, delay = script(item)
                if delay:
                    time.sleep(delay)
                payload = b'{"ok": true}' if status < 300 else b'{"error": "scripted failure"}'
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "http://127.0.0.1:1/elsewhere")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            finally:
                item.ended = time.monotonic()
                with receiver.lock:
                    receiver.in_flight[msg_id] -= 1
                    receiver.received.append(item)

    return Handler


def start_receiver() -> Receiver:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    receiver = Receiver(server)
    server.RequestHandlerClass = _handler(receiver)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    return receiver


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = start_receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()
