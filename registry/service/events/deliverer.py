"""The delivery loop `pemreg serve` and `pemreg worker` run on a background thread.

One thread claims due deliveries (registry.service.events.deliveries) while slots are free and hands
each to a pool of PEMREG_WEBHOOK_CONCURRENCY sender threads; each sends one signed POST and queues its
result, and a recorder thread writes the queued results in one transaction per batch (under load, one
commit covers many deliveries). An idle deliverer looks for due rows every
PEMREG_WEBHOOK_POLL_SECONDS, or at once after a commit in this process queued deliveries. On
PostgreSQL any number of processes deliver side by side (claims skip each other's locked rows); on
SQLite one process per database delivers: it holds an exclusive lock on `<database>.deliverer.lock`,
and the others wait for it to go.
"""

from __future__ import annotations

import fcntl
import logging
import os
import queue
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy.engine import make_url

from registry.failpoints import failpoint
from registry.service.admin import metrics
from registry.service.context import Registry
from registry.service.events import deliveries, outbox
from registry.service.events.deliveries import Claim, Result
from registry.service.events.sender import Sender
from registry.service.events.webhooks import allowed_hosts
from registry.webhooks import signing

log = logging.getLogger("pemreg.webhooks")
CLAIM_BATCH = 100
RECORD_BATCH = 200
PRUNE_EVERY_SECONDS = 3600.0


def _sqlite_lock_path(url: str) -> Path | None:
    """The lock file of a file-backed SQLite catalog; None for PostgreSQL (and in-memory SQLite)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database).expanduser().with_name(Path(parsed.database).name + ".deliverer.lock")


class Deliverer:
    def __init__(self, reg: Registry, *, name: str | None = None) -> None:
        s = reg.settings
        self.reg = reg
        self.worker = name or f"{socket.gethostname()}:{os.getpid()}"
        self.concurrency = s.webhook_concurrency
        self.sender = Sender(
            allowed_hosts(reg), timeout=s.webhook_timeout_seconds, max_connections=self.concurrency
        )
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="webhook-send")
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._in_flight = 0
        self._thread: threading.Thread | None = None
        self._results: queue.Queue[tuple[Claim, Result] | None] = queue.Queue()
        self._recorder: threading.Thread | None = None
        self._lock_path = _sqlite_lock_path(s.resolved_database_url)
        self._lock_fd: int | None = None
        self._pruned_at = 0.0

    # ---- life cycle ---------------------------------------------------------------------------------
    def start(self) -> Deliverer:
        self._thread = threading.Thread(target=self._run, name="webhook-deliverer", daemon=True)
        self._recorder = threading.Thread(target=self._record_results, name="webhook-recorder", daemon=True)
        self._thread.start()
        self._recorder.start()
        return self

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        outbox.queued.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._results.put(None)  # after the senders: every result sent is recorded first
        if self._recorder is not None:
            self._recorder.join(timeout)
        self.sender.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    # ---- the loop -----------------------------------------------------------------------------------
    def _holds_lock(self) -> bool:
        """SQLite: whether this deliverer is the database's one (taking the lock when it is free)."""
        if self._lock_path is None or self._lock_fd is not None:
            return True
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock_fd = fd
        log.info("webhook deliverer %s delivers for %s", self.worker, self._lock_path.name)
        return True

    def _run(self) -> None:
        poll = self.reg.settings.webhook_poll_seconds
        while not self._stop.is_set():
            try:
                if not self._holds_lock():
                    self._stop.wait(max(poll, 1.0))
                    continue
                outbox.queued.clear()  # before claiming: a commit after this wakes the wait below
                if self.deliver_due() == 0:
                    outbox.queued.wait(poll)
                self._prune_now_and_then()
            except Exception as exc:  # noqa: BLE001 - the catalog briefly away must not end delivery
                log.warning("webhook deliverer: %s", exc)
                self._stop.wait(poll)

    def deliver_due(self) -> int:
        """Claim what is due for the free slots and start sending it; returns how many were claimed.
        It waits for half the slots to be free first: under load a claim then takes many rows in one
        transaction, instead of one transaction per finished attempt."""
        busy_at_most = self.concurrency - max(1, self.concurrency // 2)
        with self._idle:
            while self._in_flight > busy_at_most and not self._stop.is_set():
                self._idle.wait(0.5)
            free = self.concurrency - self._in_flight
        if free <= 0:
            return 0
        claims = deliveries.claim(self.reg, limit=min(free, CLAIM_BATCH), worker=self.worker)
        for claim in claims:
            with self._idle:
                self._in_flight += 1
            self._pool.submit(self._attempt, claim)
        return len(claims)

    def _attempt(self, claim: Claim) -> None:
        try:
            body = claim.body.encode()
            headers = signing.headers(claim.secrets, claim.event_id, int(time.time()), body)
            failpoint("webhook_before_send")
            self._results.put((claim, self.sender.post(claim.url, headers, body)))
        except Exception as exc:  # noqa: BLE001 - unrecorded: the lease runs out and it is retried
            log.warning("webhook %s: event %s: %s", claim.webhook_id, claim.event_id, exc)
            self._done(1)

    def _done(self, count: int) -> None:
        with self._idle:
            self._in_flight -= count
            self._idle.notify_all()

    def _record_results(self) -> None:
        """Write queued results, as many per transaction as have arrived (up to RECORD_BATCH)."""
        while True:
            first = self._results.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < RECORD_BATCH:
                try:
                    item = self._results.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._results.put(None)  # stop after this batch
                    break
                batch.append(item)
            try:
                for (claim, result), outcome in zip(batch, self._record_with_retry(batch), strict=True):
                    metrics.webhook_delivery(outcome)
                    if outcome == "dead":
                        log.warning(
                            "webhook %s: event %s is dead: %s", claim.webhook_id, claim.event_id, result.error
                        )
            except Exception as exc:  # noqa: BLE001 - unrecorded: the leases run out and they are retried
                log.warning("webhook deliverer: %d results not recorded: %s", len(batch), exc)
            finally:
                self._done(len(batch))

    def _record_with_retry(self, batch: list[tuple[Claim, Result]]) -> list[str]:
        try:
            return deliveries.record(self.reg, batch, worker=self.worker)
        except Exception as exc:  # noqa: BLE001 - a brief database hiccup: once more, then give up
            log.warning("webhook deliverer: recording failed (%s); retrying once", exc)
            time.sleep(0.5)
            return deliveries.record(self.reg, batch, worker=self.worker)

    def wait_idle(self, timeout: float) -> bool:
        """Until no attempt is in flight (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def _prune_now_and_then(self) -> None:
        now = time.monotonic()
        if now - self._pruned_at < PRUNE_EVERY_SECONDS:
            return
        self._pruned_at = now
        gone = deliveries.prune(self.reg)
        if gone:
            log.info("webhook history: %d old events forgotten", gone)


def start_delivering(reg: Registry) -> Deliverer:
    """What `pemreg serve` and `pemreg worker` call at start-up."""
    return Deliverer(reg).start()
