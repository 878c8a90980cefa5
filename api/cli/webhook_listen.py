"""`pemreg webhooks listen`: a small receiver that makes a serving host follow an alias without polling.

For each signed `alias.moved` event whose alias matches, it pulls the exact version the event names
(`adapters pull`: DIR/<ns>/<name>@<sha8>/, sha256-checked, the config's base path set to the
registered base's source), points DIR/<ns>/<name>@<alias> at it, and runs the command, e.g. a call to
vLLM's /v1/unload_lora_adapter and /v1/load_lora_adapter. `alias.deleted` removes the link and runs the
command too. The command sees the event in its environment:

    PEMREG_EVENT_ID PEMREG_EVENT_TYPE PEMREG_ADAPTER (ns/name) PEMREG_ALIAS PEMREG_VERSION PEMREG_SHA256
    PEMREG_LORA_NAME (ns/name@alias) PEMREG_ADAPTER_PATH (DIR/ns/name@alias) PEMREG_ADAPTER_FOLDER
    (DIR/ns/name@sha8) PEMREG_BASE_MODEL (the base's source)

Events are handled one at a time and once each (by webhook-id: a retry of a handled event is answered
200 at once). A bad signature answers 401; a failed pull or command answers 500, so the registry
retries the event with its backoff, and the receiver tries again then.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import threading
from collections import OrderedDict
from fnmatch import fnmatchcase
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from registry.errors import InvalidInput
from registry.serving import unlink
from registry.webhooks import signing
from registry.webhooks.types import Event, EventType

from .backend import backend
from .output import err_console

MAX_BODY = 1024 * 1024
REMEMBERED = 10_000  # event ids kept for deduplication


class Listener:
    def __init__(
        self, directory: Path, secret: str, command: str | None, alias_glob: str, exec_timeout: float
    ) -> None:
        try:
            signing.secret_key(secret)
        except ValueError as exc:
            raise InvalidInput(f"--secret: {exc}", field="secret") from None
        self.directory = directory.expanduser().resolve()
        self.secret = secret
        self.command = shlex.split(command) if command else None
        self.alias_glob = alias_glob
        self.exec_timeout = exec_timeout
        self._lock = threading.Lock()  # one event at a time: pulls and links never interleave
        self._done: OrderedDict[str, str] = OrderedDict()

    def handle(self, headers: dict[str, str], body: bytes) -> tuple[int, str]:
        try:
            event_id = signing.verify(self.secret, headers, body)
        except signing.InvalidSignature as exc:
            return 401, f"signature: {exc}"
        with self._lock:
            if event_id in self._done:
                return 200, f"already handled: {self._done[event_id]}"
            try:
                outcome = self._apply(event_id, Event.parse(body))
            except Exception as exc:  # noqa: BLE001 - answered 500: the registry retries later
                err_console.print(f"{event_id}: failed: {exc}", markup=False, soft_wrap=True)
                return 500, f"failed: {exc}"
            self._done[event_id] = outcome
            while len(self._done) > REMEMBERED:
                self._done.popitem(last=False)
        err_console.print(f"{event_id}: {outcome}", markup=False, soft_wrap=True)
        return 200, outcome

    def _apply(self, event_id: str, event: Event) -> str:
        data = event.data
        if event.type not in (EventType.ALIAS_MOVED, EventType.ALIAS_DELETED):
            return f"{event.type.value}: nothing to do"
        if not data.name or not data.alias or not fnmatchcase(data.alias, self.alias_glob):
            return f"{event.type.value} {data.name}@{data.alias}: not followed"
        env = {
            "PEMREG_EVENT_ID": event_id,
            "PEMREG_EVENT_TYPE": event.type.value,
            "PEMREG_ADAPTER": data.name,
            "PEMREG_ALIAS": data.alias,
            "PEMREG_LORA_NAME": f"{data.name}@{data.alias}",
            "PEMREG_ADAPTER_PATH": str(self.directory / f"{data.name}@{data.alias}"),
        }
        if event.type is EventType.ALIAS_DELETED:
            unlink(self.directory, data.name, data.alias)
            outcome = f"alias.deleted {data.name}@{data.alias}: link removed"
        else:
            refs, folder = backend().pull(
                f"{data.name}@{data.version}", self.directory, link=data.alias, progress=_quiet
            )
            env |= {
                "PEMREG_VERSION": str(refs.version),
                "PEMREG_SHA256": refs.sha256,
                "PEMREG_ADAPTER_FOLDER": str(folder),
                "PEMREG_BASE_MODEL": refs.base_model_source or refs.base_model,
            }
            outcome = f"alias.moved {data.name}@{data.alias} -> {refs.version}: pulled {folder.name}"
        if self.command:
            done = subprocess.run(
                self.command, env={**os.environ, **env}, timeout=self.exec_timeout, check=False
            )
            if done.returncode != 0:
                raise RuntimeError(f"{shlex.join(self.command)} exited with {done.returncode}")
            outcome += f"; ran {self.command[0]}"
        return outcome


def _quiet(_name: str, _total: int) -> Any:
    return lambda _n: None


def _handler(listener: Listener) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_args: Any) -> None:
            pass

        def _answer(self, status: int, text: str) -> None:
            payload = (text[:2000] + "\n").encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            try:
                length = int(self.headers.get("Content-Length") or -1)
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_BODY:
                self.close_connection = True
                self._answer(413 if length > MAX_BODY else 411, "a body of at most 1 MiB with Content-Length")
                return
            body = self.rfile.read(length)
            self._answer(*listener.handle({k: v for k, v in self.headers.items()}, body))

    return Handler


def serve_listener(
    *,
    directory: Path,
    secret: str,
    command: str | None,
    host: str,
    port: int,
    alias_glob: str,
    exec_timeout: float,
) -> None:
    listener = Listener(directory, secret, command, alias_glob, exec_timeout)
    server = ThreadingHTTPServer((host, port), _handler(listener))
    server.daemon_threads = True
    err_console.print(
        f"listening on http://{host}:{server.server_address[1]}/ "
        f"(aliases {alias_glob!r} -> {listener.directory})",
        markup=False,
        soft_wrap=True,
    )
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
