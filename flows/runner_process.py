"""`python -m flows.runner_process HOME FINGERPRINT SOCKET`: the warm local runner's process.

Started by flows/local_runner.py on the first `pemreg compose` of an environment. It imports the
composition engine and Prefect once, starts (or finds) the warm local Prefect server, reconciles runs
lost by an earlier process, then answers requests on its Unix socket, one JSON object a line:
- `compose {spec_text, cwd, wait, verbose}`: `runs.start` as the CLI did in its own process (every
  check before a row exists, cache hits answered from the catalog), the run queued on this process's
  bounded executor (flows/executor.py); with `wait`, its events until it ends;
- `validate {spec_text, cwd}`: the dry run (`--dry-run`);
- `claim {run_id}`: a pending run of this catalog (a retry) queued here;
- `ping`, `stop` (finish the held runs, at most STOP_GRACE seconds, then exit).
It exits by itself after PEMREG_RUNNER_IDLE_SECONDS with no run held and no client connected.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import socketserver
import sys
import threading
import time
from pathlib import Path
from typing import Any

from registry.errors import InvalidInput, RegistryError, describe_unexpected
from registry.service import Registry
from registry.service.compositions import reads as comps
from registry.service.compositions import runs
from registry.service.compositions.reads import CompositionView
from registry.settings import Settings
from registry.spec import CompositionSpec, load_spec

from .executor import RunEvent, RunExecutor, shared_executor
from .local_runner import RunnerState, folder, read_state, write_state
from .runners import install, resubmit, route_prefect_logs

log = logging.getLogger("pemreg.runner")
STOP_GRACE = 30.0
POLL_SECONDS = 0.5  # the row is read this often while waiting for events (a run on a Prefect worker)


def absolute_paths(spec: CompositionSpec, cwd: str) -> CompositionSpec:
    """Relative local dataset paths in a spec are relative to the command's folder, not this process's:
    made absolute before the run (and recorded so in its spec). URIs and absolute paths are kept."""

    def fix(location: str) -> str:
        if "://" in location or location.startswith(("/", "~")):
            return location
        return str(Path(cwd, location))

    evaluate = [e.model_copy(update={"dataset": fix(e.dataset)}) for e in spec.evaluate]
    names = {e.name for e in spec.evaluate}
    calibration = spec.calibration
    if calibration is not None and calibration not in names:
        calibration = fix(calibration)
    if evaluate == spec.evaluate and calibration == spec.calibration:
        return spec
    return CompositionSpec.model_validate(
        {**spec.canonical(), "evaluate": [e.model_dump() for e in evaluate], "calibration": calibration}
    )


def parse(message: dict[str, Any]) -> CompositionSpec:
    text = message.get("spec_text")
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("spec: the file is empty", field="spec")
    spec = load_spec(text if "\n" in text else text + "\n")
    return absolute_paths(spec, str(message.get("cwd") or os.getcwd()))


def _view(view: CompositionView) -> dict[str, Any]:
    return view.model_dump(mode="json")


class Runner:
    def __init__(self, reg: Registry, executor: RunExecutor, state: RunnerState) -> None:
        self.reg = reg
        self.executor = executor
        self.state = state
        self.stopping = threading.Event()
        self.clients = 0
        self.last_activity = time.monotonic()
        self.lock = threading.Lock()

    # ---- requests --------------------------------------------------------------------------------

    def handle(self, message: dict[str, Any], send: Any) -> None:
        op = message.get("op")
        if op == "ping":
            send({"type": "pong", "pid": os.getpid(), "active": self.executor.active()})
        elif op == "stop":
            send({"type": "done"})
            self.stopping.set()
        elif op == "compose":
            self.compose(message, send)
        elif op == "validate":
            from registry.service.compositions.dry_run import dry_run

            send({"type": "done", "report": dry_run(self.reg, parse(message)).to_dict()})
        elif op == "claim":
            view = comps.get(self.reg, str(message.get("run_id")))
            claimed = self.executor.submit(self.reg, view, CompositionSpec.model_validate(view.spec))
            send({"type": "done", "run": _view(claimed)})
        else:
            raise InvalidInput(f"unknown request {op!r}", field="op")

    def compose(self, message: dict[str, Any], send: Any) -> None:
        spec = parse(message)
        events: queue.Queue[RunEvent] = queue.Queue()
        with self.executor.watching(events.put):
            view = runs.start(self.reg, spec, "cli", runner="default")
        try:
            send({"type": "submitted", "run": _view(view)})
            if message.get("wait") and not view.status.terminal:
                view = self.follow(view, events, bool(message.get("verbose")), send)
        finally:
            self.executor.unwatch(view.id, events.put)
        send({"type": "done", "run": _view(view)})

    def follow(
        self, view: CompositionView, events: queue.Queue[RunEvent], verbose: bool, send: Any
    ) -> CompositionView:
        """Forward the run's events until it ends; the row is the truth (read on `finished`, and every
        POLL_SECONDS for a run this process does not execute)."""
        status = view.status
        while True:
            try:
                event = events.get(timeout=POLL_SECONDS)
            except queue.Empty:
                event = None
            if event is not None and event.kind == "log":
                if verbose or event.step or event.level >= logging.WARNING:
                    send(
                        {
                            "type": "event",
                            "kind": "log",
                            "message": event.message,
                            "level": logging.getLevelName(event.level),
                            "step": event.step,
                        }
                    )
                continue
            view = comps.get(self.reg, view.id)
            if view.status != status or event is not None:
                status = view.status
                send({"type": "event", "kind": event.kind if event else "status", "status": status.value})
            if view.status.terminal:
                return view

    # ---- lifetime --------------------------------------------------------------------------------

    def touch(self, delta: int) -> None:
        with self.lock:
            self.clients += delta
            self.last_activity = time.monotonic()

    def idle_for(self) -> float:
        with self.lock:
            if self.clients or self.executor.active():
                self.last_activity = time.monotonic()
            return time.monotonic() - self.last_activity


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        runner = self.server.runner
        runner.touch(+1)
        try:
            line = self.rfile.readline(1 << 20)
            if not line.strip():
                return

            def send(reply: dict[str, Any]) -> None:
                self.wfile.write(json.dumps(reply).encode() + b"\n")
                self.wfile.flush()

            try:
                message = json.loads(line)
                if not isinstance(message, dict):
                    raise InvalidInput("request: expected a JSON object", field="request")
                runner.handle(message, send)
            except (BrokenPipeError, ConnectionResetError):
                return  # the command went away (Ctrl-C); its run goes on
            except RegistryError as exc:
                send(_error(exc, str(exc)))
            except Exception as exc:  # noqa: BLE001 - every failure is one line for the command
                log.warning("request failed: %s", describe_unexpected(exc), exc_info=True)
                send(_error(exc, describe_unexpected(exc)))
        except (BrokenPipeError, ConnectionResetError):
            return
        finally:
            runner.touch(-1)


def _error(exc: BaseException, message: str) -> dict[str, Any]:
    return {
        "type": "error",
        "error": type(exc).__name__,
        "registry_error": isinstance(exc, RegistryError),
        "message": message,
        "field": getattr(exc, "field", None),
    }


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    runner: Runner


def main(argv: list[str]) -> int:
    home, fp, sock = argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per Prefect API call otherwise
    settings = Settings()
    if settings.home.expanduser().resolve() != Path(home).resolve():
        log.error("PEMREG_HOME is %s, expected %s", settings.home, home)
        return 2
    started = time.monotonic()
    reg = Registry(settings)
    install(settings, "background")
    executor = shared_executor(settings)
    Path(sock).unlink(missing_ok=True)
    server = _Server(sock, _Handler)
    os.chmod(sock, 0o600)
    state = RunnerState(os.getpid(), sock, fp, folder(Path(home), fp))
    runner = Runner(reg, executor, state)
    server.runner = runner
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    write_state(state)
    log.info("local runner ready in %.1f s on %s (pid %d)", time.monotonic() - started, sock, os.getpid())
    # Ready before the heavy imports: a dry run or a cache hit needs no Prefect, and the first command
    # should not wait for what it does not use. torch, transformers and Prefect are imported now, in the
    # background (a run that needs them first waits on the import), then lost runs are reconciled.
    threading.Thread(target=_warm_up, args=(reg, settings), name="warm-up", daemon=True).start()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: runner.stopping.set())
    next_reconcile = time.monotonic() + settings.reconcile_interval_seconds
    while not runner.stopping.wait(1.0):
        if runner.idle_for() > settings.runner_idle_seconds:
            log.info("idle for %.0f s: exiting", settings.runner_idle_seconds)
            break
        if _replaced(state):
            log.info("another runner took this folder over: exiting")
            break
        if time.monotonic() > next_reconcile:
            _reconcile(reg)
            next_reconcile = time.monotonic() + settings.reconcile_interval_seconds
    server.shutdown()  # no new requests; the held runs finish (bounded)
    if not executor.wait_idle(STOP_GRACE):
        log.warning("exiting with %d run(s) unfinished: reconcile will end them", executor.active())
    server.server_close()
    if not _replaced(state):
        (state.folder / "state.json").unlink(missing_ok=True)
        Path(sock).unlink(missing_ok=True)
    _flush_prefect()
    return 0


def _flush_prefect() -> None:
    """Send what Prefect still queues (run logs, task-run state events) before a fast exit."""
    if "prefect" not in sys.modules:
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for service in (APILogWorker, EventsWorker):
        try:
            service.drain_all(timeout=5.0)
        except Exception as exc:  # noqa: BLE001 - the Prefect server gone: nothing more to send
            log.warning("could not flush %s: %s", service.__name__, runs.one_line(exc))


def _warm_up(reg: Registry, settings: Settings) -> None:
    started = time.monotonic()
    import flows.compose  # noqa: F401 - its Prefect imports configure Prefect's loggers: route after it

    route_prefect_logs(settings)
    log.info("engine and Prefect imported in %.1f s", time.monotonic() - started)
    for lost in _reconcile(reg):
        log.warning("composition %s %s: %s", lost.composition_id, lost.action, lost.message)


def _replaced(state: RunnerState) -> bool:
    current = read_state(state.folder)
    return current is not None and current.pid != state.pid


def _reconcile(reg: Registry) -> list[runs.Reconciled]:
    try:
        return runs.reconcile(reg, restart=resubmit)
    except Exception as exc:  # noqa: BLE001 - the catalog briefly away must not stop the runner
        log.warning("reconcile failed: %s", runs.one_line(exc))
        return []


if __name__ == "__main__":
    code = main(sys.argv[1:])
    logging.shutdown()
    sys.stdout.flush()
    # Skip the interpreter's teardown of torch, transformers and Prefect (seconds on a busy machine):
    # the runs are done and Prefect's queues flushed.
    os._exit(code)
