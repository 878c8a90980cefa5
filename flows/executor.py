"""The bounded executor of compose flow runs: a queue and a fixed pool of threads in a warm process.

The REST server and the local runner (flows/runner_process.py) hand it every run of the embedded
default. `submit` claims the pending row for this process (its worker label and a fresh beat, so every
reconciler sees who holds it) and queues it; one of `compose_workers` threads runs the Prefect `compose`
flow for it. Nothing grows with the number of requests but the queue, which is bounded
(`compose_queue_limit`): a full queue refuses the run (Busy: HTTP 503 with Retry-After).

While the executor holds a run (queued or executing) it beats for it, retrying every second after a
failed beat so that a database back from a stall sees this process's beat first; and reconcile in this
process never ends a run it holds (`runs.register_owner`), so a process never fails its own live run as
"worker lost".

Watchers (`watch`) receive the run's events: queued, started, each Prefect flow/task log record of that
run (through a context variable, which Prefect copies into its task threads), finished.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from registry.errors import Busy
from registry.service import Registry
from registry.service.compositions import runs
from registry.service.compositions.reads import CompositionView
from registry.settings import Settings
from registry.spec import CompositionSpec

from .runners import embedded_api_url, run_compose_flow

log = logging.getLogger("pemreg.executor")
Watcher = Callable[["RunEvent"], None]
_current_run: ContextVar[str | None] = ContextVar("pemreg_executing_run", default=None)
_submit_watchers: ContextVar[tuple[Watcher, ...]] = ContextVar("pemreg_submit_watchers", default=())
FAILED_BEAT_RETRY_SECONDS = 1.0


@dataclass(frozen=True)
class RunEvent:
    run_id: str
    kind: str  # "queued" | "started" | "log" | "finished"
    message: str = ""
    level: int = logging.INFO
    step: str | None = None  # the Prefect task run a log record came from


@dataclass
class _Job:
    reg: Registry
    run: CompositionView
    spec: CompositionSpec
    started: bool = field(default=False)


class RunExecutor:
    """One per process (`shared_executor`). Threads start on the first submission."""

    def __init__(self, workers: int, queue_limit: int, heartbeat_seconds: float) -> None:
        self.workers = workers
        self.queue_limit = queue_limit
        self.heartbeat_seconds = heartbeat_seconds
        self._queue: queue.Queue[_Job] = queue.Queue()
        self._held: dict[str, _Job] = {}
        self._watchers: dict[str, list[Watcher]] = {}
        self._lock = threading.Lock()
        self._started = False
        self._idle = threading.Condition(self._lock)
        self._changed = threading.Event()  # a run was queued: the beat loop rereads its interval

    # ---- what runs.start and reconcile ask -------------------------------------------------------

    def holds(self, run: CompositionView) -> bool:
        with self._lock:
            return run.id in self._held

    def admit(self) -> None:
        """Raise Busy when a run submitted now would find the queue full."""
        with self._lock:
            self._check_room()

    def _check_room(self) -> None:
        waiting = sum(1 for job in self._held.values() if not job.started)
        free = self.workers - (len(self._held) - waiting)
        if waiting >= self.queue_limit + max(0, free):
            raise Busy(
                f"the composition queue is full ({self.queue_limit} runs waiting for {self.workers} "
                "workers); retry later"
            )

    def submit(self, reg: Registry, run: CompositionView, spec: CompositionSpec) -> CompositionView:
        """Claim the pending run for this process and queue it; returns at once."""
        self._start()
        with self._lock:
            if run.id in self._held:
                return run
            self._check_room()
            job = _Job(reg, run, spec)
            self._held[run.id] = job  # before the claim: a reconcile in between must see it held
            for watcher in _submit_watchers.get():  # events from the first one on
                self._watchers.setdefault(run.id, []).append(watcher)
        try:
            job.run = runs.claim(reg, run.id)
        except Exception:
            with self._lock:
                self._held.pop(run.id, None)
            raise
        self._queue.put(job)
        self._changed.set()
        self._emit(RunEvent(run.id, "queued", f"queued ({self._queue.qsize()} waiting)"))
        return job.run

    # ---- progress --------------------------------------------------------------------------------

    @contextmanager
    def watching(self, watcher: Watcher) -> Iterator[None]:
        """Runs submitted from this context are watched by `watcher` from their first event."""
        token = _submit_watchers.set((*_submit_watchers.get(), watcher))
        try:
            yield
        finally:
            _submit_watchers.reset(token)

    def watch(self, run_id: str, watcher: Watcher) -> None:
        with self._lock:
            self._watchers.setdefault(run_id, []).append(watcher)

    def unwatch(self, run_id: str, watcher: Watcher) -> None:
        with self._lock:
            left = [w for w in self._watchers.get(run_id, []) if w is not watcher]
            if left:
                self._watchers[run_id] = left
            else:
                self._watchers.pop(run_id, None)

    def _emit(self, event: RunEvent) -> None:
        with self._lock:
            watchers = list(self._watchers.get(event.run_id, ()))
        for watcher in watchers:
            try:
                watcher(event)
            except Exception:  # noqa: BLE001 - a gone watcher (closed socket) must not stop the run
                log.debug("watcher of %s failed", event.run_id, exc_info=True)

    def active(self) -> int:
        """Runs held (queued or executing)."""
        with self._lock:
            return len(self._held)

    def wait_idle(self, timeout: float) -> bool:
        """Block until no run is held (or `timeout` s pass); True when idle."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._held, timeout=timeout)

    # ---- threads ---------------------------------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        _install_log_handler(self)
        for i in range(self.workers):
            threading.Thread(target=self._work, name=f"compose-worker-{i}", daemon=True).start()
        threading.Thread(target=self._beat, name="compose-beat", daemon=True).start()

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            with self._lock:
                job.started = True
            self._emit(RunEvent(job.run.id, "started", "started"))
            token = _current_run.set(job.run.id)
            try:
                run_compose_flow(job.reg, job.run, job.spec, api_url=embedded_api_url(job.reg))
            except BaseException as exc:  # noqa: BLE001 - one run's failure never stops a worker thread
                log.warning("composition %s: %s", job.run.id, runs.one_line(exc))
                try:
                    runs.fail_if_active(job.reg, job.run.id, f"could not run: {runs.one_line(exc)}")
                except Exception as again:  # noqa: BLE001 - catalog away: reconcile ends it later
                    log.warning("composition %s not marked failed: %s", job.run.id, runs.one_line(again))
            finally:
                _current_run.reset(token)
                with self._idle:
                    self._held.pop(job.run.id, None)
                    self._idle.notify_all()
                self._emit(RunEvent(job.run.id, "finished", "finished"))

    def _beat(self) -> None:
        """Refresh the beat of every held run, one UPDATE per catalog, at the shortest heartbeat
        interval among them; again within a second after a failed beat."""
        wait = self.heartbeat_seconds
        while True:
            self._changed.wait(wait)
            self._changed.clear()
            with self._lock:
                jobs = list(self._held.values())
            wait = min([self.heartbeat_seconds, *(j.reg.settings.heartbeat_seconds for j in jobs)])
            by_catalog: dict[int, tuple[Registry, list[str]]] = {}
            for job in jobs:
                by_catalog.setdefault(id(job.reg.sessions), (job.reg, []))[1].append(job.run.id)
            for reg, ids in by_catalog.values():
                try:
                    runs.beat_many(reg, ids)
                except Exception as exc:  # noqa: BLE001 - database away: beat again soon
                    log.warning("heartbeat of %d held run(s) failed: %s", len(ids), runs.one_line(exc))
                    wait = min(wait, FAILED_BEAT_RETRY_SECONDS)


class _RunLogHandler(logging.Handler):
    """Prefect's flow and task log records of a run this executor is executing, to its watchers."""

    def __init__(self, executor: RunExecutor) -> None:
        super().__init__(level=logging.INFO)
        self.executor = executor

    def emit(self, record: logging.LogRecord) -> None:
        run_id = _current_run.get()
        if run_id is None:
            return
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is not worth a failed run
            return
        step = getattr(record, "task_run_name", None)
        self.executor._emit(RunEvent(run_id, "log", message, record.levelno, step))


def _install_log_handler(executor: RunExecutor) -> None:
    import flows.compose  # noqa: F401 - its Prefect imports reconfigure the loggers: attach after them

    handler = _RunLogHandler(executor)
    for name in ("prefect", "prefect.extra", "pemreg"):
        logging.getLogger(name).addHandler(handler)


_shared: list[RunExecutor] = []
_shared_lock = threading.Lock()


def shared_executor(settings: Settings) -> RunExecutor:
    """This process's executor (the pool bound is per process), registered as a run owner."""
    with _shared_lock:
        if not _shared:
            executor = RunExecutor(
                settings.compose_workers, settings.compose_queue_limit, settings.heartbeat_seconds
            )
            runs.register_owner(executor)
            _shared.append(executor)
        return _shared[0]
