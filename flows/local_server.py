"""A Prefect server kept warm between CLI commands on the embedded default.

Prefect's ephemeral server costs ~15-20 s per process on 2 cores; a background `prefect server start`
bound to 127.0.0.1 is started on first use, reused by later commands, and stopped with
`pemreg prefect-server stop`. Its state (pid, url, log) lives under <PEMREG_HOME>/prefect/.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

STARTUP_TIMEOUT = 90.0


def _state_file(home: Path) -> Path:
    return home / "prefect" / "server.json"


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) is not a running server
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _port_taken(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def status(home: Path) -> dict | None:
    """{pid, url} of a running, healthy server started by us, else None."""
    path = _state_file(home)
    if not path.is_file():
        return None
    state = json.loads(path.read_text())
    if _alive(state["pid"]) and _healthy(state["url"]):
        return state
    return None


@contextmanager
def _start_lock(root: Path, timeout: float) -> Iterator[None]:
    """One starter at a time per home: two commands starting the server at once (two `pemreg compose`,
    or `serve` beside a CLI) would both launch one, and the loser's exits at start-up on the taken
    port. The second waits here, then finds the first one's server healthy. flock: released by the
    kernel if the holder dies, so a crashed starter never blocks the next one."""
    with open(root / "start.lock", "a+b") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"another process has been starting the local Prefect server for {timeout:.0f} s; "
                        f"see {root / 'server.log'}"
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def ensure_running(home: Path, port: int) -> str:
    """The API URL of the warm local server, starting it if needed (one starter at a time)."""
    state = status(home)
    if state:
        return state["url"]
    root = home / "prefect"
    root.mkdir(parents=True, exist_ok=True)
    with _start_lock(root, STARTUP_TIMEOUT + 30):
        state = status(home)  # started by the process that held the lock before us
        if state:
            return state["url"]
        return _start(home, root, port)


def _start(home: Path, root: Path, port: int) -> str:
    if _port_taken(port):
        # Another home's server (or anything else) has it: any free port will do, the state file records it.
        port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}  # the server must not be a client
    env.update(PREFECT_HOME=str(root), PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_UI_ENABLED="true")
    with open(root / "server.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the local Prefect server exited at start-up; see {root / 'server.log'}")
        if _healthy(url):
            _state_file(home).write_text(json.dumps({"pid": proc.pid, "url": url}))
            return url
        time.sleep(0.5)
    proc.terminate()
    raise RuntimeError(
        f"the local Prefect server did not answer within {STARTUP_TIMEOUT:.0f} s; see {root / 'server.log'}"
    )


def stop(home: Path, timeout: float = 20.0) -> bool:
    path = _state_file(home)
    if not path.is_file():
        return False
    pid = json.loads(path.read_text())["pid"]
    path.unlink()
    if not _alive(pid):
        return False
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
    if _alive(pid):
        os.killpg(pid, signal.SIGKILL)
    return True
