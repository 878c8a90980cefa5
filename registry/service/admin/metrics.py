"""Prometheus metrics of this process (prometheus_client), one place for every family.

The families exist only in processes that serve them: `pemreg serve` (and its app processes) and
`pemreg worker --metrics-port` call `enable()`. Everywhere else (a catalog command, a test building
rows) every counting function below is a no-op and prometheus_client is never imported.

Under `pemreg serve --workers N` the server sets PROMETHEUS_MULTIPROC_DIR before any process imports
prometheus_client, so each process writes its samples to files there and `exposition()` reads them
all: one scrape of any process answers for the whole server. `pemreg_webhook_outbox_pending` is read
from the catalog at scrape time (it is the catalog's state, not a process's).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

log = logging.getLogger("pemreg.metrics")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
RUN_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

PendingSource = Callable[[], int]


class _Families:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector

        self.registry = CollectorRegistry(auto_describe=True)
        if not os.environ.get(MULTIPROC_ENV):
            ProcessCollector(registry=self.registry)  # per process; meaningless summed across workers
        r = self.registry
        self.http_requests = Counter(
            "pemreg_http_requests_total",
            "HTTP requests answered, by method, route template and status code",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "pemreg_http_request_duration_seconds",
            "Time from request to the last byte of the answer, by route template",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        self.compositions = Counter(
            "pemreg_compositions_total", "Composition runs ended, by final status", ["status"], registry=r
        )
        self.composition_duration = Histogram(
            "pemreg_composition_duration_seconds",
            "Composition runs from start (or creation) to end",
            ["status"],
            buckets=RUN_BUCKETS,
            registry=r,
        )
        self.reconciled = Counter(
            "pemreg_runs_reconciled_total",
            "Stale runs ended by reconcile, by outcome (failed | retried)",
            ["outcome"],
            registry=r,
        )
        self.deliveries = Counter(
            "pemreg_webhook_deliveries_total",
            "Webhook delivery attempts, by outcome (delivered | retrying | dead)",
            ["outcome"],
            registry=r,
        )
        self.gc_deleted = Counter(
            "pemreg_gc_objects_deleted_total", "Store objects deleted by gc", registry=r
        )
        # Known label values start at 0, so a dashboard's rate() sees the series before the first event.
        for family, values in (
            (self.compositions, ("succeeded", "failed", "rejected")),
            (self.reconciled, ("failed", "retried")),
            (self.deliveries, ("delivered", "retrying", "dead")),
        ):
            for value in values:
                family.labels(value)


_families: _Families | None = None
_lock = threading.Lock()


def enable() -> None:
    """Create the families in this process (idempotent). Call before counting anything."""
    global _families
    with _lock:
        if _families is None:
            _families = _Families()


def enabled() -> bool:
    return _families is not None


# ---- counting (no-ops until enable()) ------------------------------------------------------------


def http_request(method: str, route: str, status: int, seconds: float) -> None:
    if _families is None:
        return
    method = method if method in METHODS else "OTHER"
    _families.http_requests.labels(method, route, str(status)).inc()
    _families.http_duration.labels(method, route).observe(seconds)


def composition_ended(status: str, seconds: float | None) -> None:
    if _families is None:
        return
    _families.compositions.labels(status).inc()
    if seconds is not None and seconds >= 0:
        _families.composition_duration.labels(status).observe(seconds)


def runs_reconciled(outcomes: Iterable[str]) -> None:
    if _families is None:
        return
    for outcome in outcomes:
        _families.reconciled.labels(outcome).inc()


def webhook_delivery(outcome: str) -> None:
    if _families is not None:
        _families.deliveries.labels(outcome).inc()


def gc_objects_deleted(count: int) -> None:
    if _families is not None and count > 0:
        _families.gc_deleted.inc(count)


# ---- exposition --------------------------------------------------------------------------------


class _Exported:
    """What a scrape answers: this process's families (or every process's, in multiprocess mode), and
    the outbox gauge read from the catalog."""

    def __init__(self, pending: PendingSource | None) -> None:
        self.pending = pending

    def collect(self) -> Iterator[Any]:
        from prometheus_client import CollectorRegistry
        from prometheus_client.core import GaugeMetricFamily

        if os.environ.get(MULTIPROC_ENV):
            from prometheus_client.multiprocess import MultiProcessCollector

            source = CollectorRegistry()
            MultiProcessCollector(source)
        else:
            assert _families is not None
            source = _families.registry
        yield from source.collect()
        if self.pending is None:
            return
        try:
            value = self.pending()
        except Exception as exc:  # noqa: BLE001 - the catalog away must not break the scrape
            log.warning("metrics: cannot count pending webhook deliveries: %s", exc)
            return
        yield GaugeMetricFamily(
            "pemreg_webhook_outbox_pending", "Webhook deliveries not yet delivered or dead", value=value
        )


def exposition_registry(pending: PendingSource | None = None) -> Any:
    """A prometheus_client registry to render or serve (`start_http_server(registry=...)`)."""
    from prometheus_client import CollectorRegistry

    enable()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Exported(pending))
    return registry


def exposition(pending: PendingSource | None = None) -> tuple[bytes, str]:
    """(body, content type) of GET /metrics."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(exposition_registry(pending)), CONTENT_TYPE_LATEST


def serve_http(port: int, host: str, pending: PendingSource | None = None) -> None:
    """`pemreg worker --metrics-port`: the same exposition on a small HTTP server thread."""
    from prometheus_client import start_http_server

    start_http_server(port, addr=host, registry=exposition_registry(pending))
