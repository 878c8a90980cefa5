"""The warm local runner: the process that composes for `pemreg compose` on the embedded default.

Each `pemreg compose` used to import torch and Prefect and start a flow engine before any work (3-4 s
of a 5-6 s command). The first `pemreg compose` of a home now starts `python -m flows.runner_process`
in the background (the same bounded executor as `pemreg serve`, flows/executor.py, with the warm local
Prefect server); later commands hand it their spec over a Unix socket, stream its progress and wait.
It exits after PEMREG_RUNNER_IDLE_SECONDS without work, or on `pemreg runner stop`.

One runner serves one environment: its state folder (<home>/runner/<fingerprint>/) is keyed by the
settings that change what a run does (PEMREG_*, PREFECT_*, AWS_*, HF_*, threads, proxies and CA files,
the interpreter and the installed code), so a command run with other settings never borrows a runner
built for different ones. The socket lives in that folder (mode 0700): only this OS user can reach it,
as only this user can read the catalog it composes into.

This module is the client side and imports only the standard library: a command pays ~1 ms for it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STARTUP_TIMEOUT = 180.0  # cold imports + a first Prefect server start on 2 busy cores
STOP_TIMEOUT = 30.0
SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes on Linux; keep a margin
# The settings a runner is built from: another value means another runner.
ENV_PREFIXES = (
    "PEMREG_",
    "PREFECT_",
    "AWS_",
    "HF_",
    "HUGGINGFACE_",
    "TRANSFORMERS_",
    "TORCH",
    "OMP_",
    "MKL_",
    "CUDA_",
    "PYTHON",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "SSL_CERT_",
    "REQUESTS_CA_BUNDLE",
)
ENV_IGNORED = {"PEMREG_URL", "PEMREG_API_KEY"}  # remote mode never reaches the local runner


class RunnerError(RuntimeError):
    """The local runner could not be started or reached (one line, names its log)."""


@dataclass(frozen=True)
class RunnerState:
    pid: int
    socket: str
    fingerprint: str
    folder: Path

    @property
    def log(self) -> Path:
        return self.folder / "runner.log"


def fingerprint(env: dict[str, str] | None = None) -> str:
    env = dict(os.environ if env is None else env)
    relevant = sorted(
        (k, v) for k, v in env.items() if k.upper().startswith(ENV_PREFIXES) and k not in ENV_IGNORED
    )
    code = [sys.executable]
    for package in ("registry", "flows"):
        init = Path(__file__).resolve().parent.parent / package / "__init__.py"
        with contextlib.suppress(OSError):
            code.append(f"{init}:{init.stat().st_mtime_ns}")
    digest = hashlib.sha256(json.dumps([relevant, code]).encode()).hexdigest()
    return digest[:16]


def folder(home: Path, fp: str) -> Path:
    return home / "runner" / fp


def socket_path(home: Path, fp: str) -> str:
    local = folder(home, fp) / "sock"
    if len(str(local)) <= SOCKET_PATH_MAX:
        return str(local)
    # A deep home (a test's tmp path): a private folder under the temp dir, named after home + fp.
    private = Path(tempfile.gettempdir()) / f"pemreg-{os.getuid()}"
    private.mkdir(mode=0o700, exist_ok=True)
    if private.stat().st_uid != os.getuid() or private.stat().st_mode & 0o077:
        raise RunnerError(f"{private} is not a private folder of this user; set a shorter PEMREG_HOME")
    name = hashlib.sha256(f"{home.resolve()}\0{fp}".encode()).hexdigest()[:20]
    return str(private / f"{name}.sock")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie (exited, not yet reaped) is not a running runner
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def read_state(path: Path) -> RunnerState | None:
    try:
        data = json.loads((path / "state.json").read_text())
        return RunnerState(int(data["pid"]), str(data["socket"]), str(data["fingerprint"]), path)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_state(state: RunnerState) -> None:
    tmp = state.folder / "state.json.tmp"
    tmp.write_text(json.dumps({"pid": state.pid, "socket": state.socket, "fingerprint": state.fingerprint}))
    os.replace(tmp, state.folder / "state.json")


def running(home: Path) -> list[RunnerState]:
    """Every live runner of this home (one per environment that composed recently)."""
    root = home / "runner"
    found = []
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        state = read_state(path)
        if state is not None and _alive(state.pid):
            found.append(state)
    return found


@contextlib.contextmanager
def _locked(path: Path, timeout: float) -> Iterator[None]:
    """One starter at a time per runner folder (two commands starting at once share one runner)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(path, "a+") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RunnerError(f"another command holds {path} for more than {timeout:.0f} s") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_running(
    home: Path, *, on_start: Callable[[], None] | None = None, timeout: float = STARTUP_TIMEOUT
) -> RunnerState:
    """The runner for this environment, started (and waited for) when none answers."""
    fp = fingerprint()
    where = folder(home, fp)
    state = read_state(where)
    if state is not None and _alive(state.pid) and _answers(state.socket):
        return state
    with _locked(where / "lock", timeout):
        state = read_state(where)
        if state is not None and _alive(state.pid) and _answers(state.socket):
            return state  # another command started it while we waited for the lock
        if on_start is not None:
            on_start()
        return _start(home, fp, where, timeout)


def _answers(path: str) -> bool:
    try:
        with _connect(path, timeout=5.0) as conn:
            _send(conn, {"op": "ping"})
            return next(_lines(conn), {}).get("type") == "pong"
    except OSError:
        return False


def _start(home: Path, fp: str, where: Path, timeout: float) -> RunnerState:
    where.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(where, 0o700)
    sock = socket_path(home, fp)
    log_path = where / "runner.log"
    (where / "state.json").unlink(missing_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flows.runner_process", str(home), fp, sock],
            cwd=where,  # relative paths never resolve against whatever folder started it
            env=os.environ.copy(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in the terminal that started it does not stop the runs
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RunnerError(f"the local runner exited at start-up ({_tail(log_path)}); see {log_path}")
        state = read_state(where)
        if state is not None and state.pid == proc.pid and _answers(state.socket):
            return state
        time.sleep(0.05)
    proc.terminate()
    raise RunnerError(f"the local runner did not start within {timeout:.0f} s; see {log_path}")


def _tail(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1][:300] if lines else "no output"


def stop(home: Path, timeout: float = STOP_TIMEOUT, *, keep: frozenset[int] = frozenset()) -> list[int]:
    """Stop every runner of this home (but the pids in `keep`): each finishes the runs it holds (at
    most `timeout` s)."""
    stopped = []
    for state in running(home):
        if state.pid in keep:
            continue
        with contextlib.suppress(OSError), _connect(state.socket, timeout=5.0) as conn:
            _send(conn, {"op": "stop"})
            next(_lines(conn), None)
        deadline = time.monotonic() + timeout
        while _alive(state.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(state.pid):
            with contextlib.suppress(OSError):
                os.killpg(state.pid, signal.SIGKILL)
        stopped.append(state.pid)
    return stopped


# ---- the wire: one JSON object a line over the Unix socket ------------------------------------------


def _connect(path: str, timeout: float | None) -> socket.socket:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    try:
        conn.connect(path)
    except OSError:
        conn.close()
        raise
    return conn


def _send(conn: socket.socket, message: dict[str, Any]) -> None:
    conn.sendall(json.dumps(message).encode() + b"\n")


def _lines(conn: socket.socket) -> Iterator[dict[str, Any]]:
    buffer = b""
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            return
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield json.loads(line)


class RunnerGone(RunnerError):
    """The runner closed the connection before answering (it died, or was stopped)."""


def request(state: RunnerState, message: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Send one request; yield the runner's messages until its last (`done` or `error`)."""
    try:
        conn = _connect(state.socket, timeout=None)
    except OSError as exc:
        raise RunnerError(f"cannot reach the local runner at {state.socket}: {exc}") from None
    with conn:
        _send(conn, message)
        for reply in _lines(conn):
            yield reply
            if reply.get("type") in ("done", "error"):
                return
    raise RunnerGone(f"the local runner (pid {state.pid}) stopped before answering; see {state.log}")


class Handoff:
    """A composition runner (registry.service.compositions.runs.Runner) for a CLI process: the pending
    run goes to the warm local runner, which claims and queues it (a retry found by reconcile)."""

    def __init__(self, home: Path) -> None:
        self.home = home

    def submit(self, reg: Any, run: Any, spec: Any) -> Any:
        from registry.service.compositions.reads import get

        for reply in request(ensure_running(self.home), {"op": "claim", "run_id": run.id}):
            if reply.get("type") == "error":
                raise RunnerError(reply.get("message") or "the local runner refused the run")
        return get(reg, run.id)


def register_handoff(home: Path) -> None:
    """Make this process's `default` runner hand embedded runs to the local runner."""
    from registry.service.compositions import runs

    from .runners import DefaultRunner, DeploymentRunner

    runs.register_runner("default", DefaultRunner(Handoff(home), DeploymentRunner()))
