"""`pemreg worker`: serve the compose, recompose-stale and scheduled-spec deployments.

By default runs execute in this warm process (flows/warm_worker.py); `subprocess=True` uses Prefect's
stock runner (one interpreter per run). On GPU machines the same flows can instead be deployed to a
Prefect work pool (`compose_flow.deploy(...)`) and run by `prefect worker start` unchanged.

While it serves, the worker re-reads the stored schedules every PEMREG_SCHEDULE_SYNC_SECONDS
(flows/schedules.py) and reconciles lost runs every PEMREG_RECONCILE_INTERVAL_SECONDS.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any
from uuid import UUID

from registry.service import Registry
from registry.service.admin import metrics
from registry.service.admin.leftovers import at_start
from registry.service.compositions import runs
from registry.service.events.deliverer import start_delivering
from registry.settings import Settings

from .runners import install, resubmit
from .schedules import Host, ScheduleSync
from .warm_worker import WarmWorker

log = logging.getLogger("pemreg.worker")


def reconcile_once(reg: Registry) -> list[runs.Reconciled]:
    try:
        done = runs.reconcile(reg, restart=resubmit)
        metrics.runs_reconciled(d.action for d in done)
        return done
    except Exception as exc:  # noqa: BLE001 - the catalog briefly away must not stop the worker
        log.warning("reconcile failed: %s", runs.one_line(exc))
        return []


def _every(seconds: float, stop: threading.Event, what: str, work: Any) -> None:
    while not stop.wait(seconds):
        try:
            work()
        except Exception as exc:  # noqa: BLE001 - the catalog or Prefect briefly away: try next time
            log.warning("%s failed: %s", what, runs.one_line(exc))


def _background(name: str, seconds: float, stop: threading.Event, work: Any) -> None:
    threading.Thread(target=_every, args=(seconds, stop, name, work), name=name, daemon=True).start()


def _stock_runner(limit: int) -> tuple[Host, Any]:
    """Prefect's own runner (a process per run). Deployments added while it runs are applied and
    polled like the first ones; a removed schedule's deployment is deleted on the API, so the runner
    finds no runs for it."""
    from prefect.runner import Runner

    # pause_on_shutdown=False: one worker stopping must not pause the schedules the others serve.
    runner = Runner(limit=limit, pause_on_shutdown=False)

    def add(_flow: Any, deployment: Any, _known: UUID | None) -> UUID:
        return runner.add_deployment(deployment)  # type: ignore[return-value] # sync call

    return Host(add=add, forget=lambda _id: None), runner


def run_worker(limit: int = 2, subprocess: bool = False) -> None:
    """Reconcile runs lost by an earlier worker, register the deployments, then serve them."""
    log.setLevel(logging.INFO)  # a service: say what it serves and claims (warm_worker logs here too)
    reg = Registry(Settings())
    install(reg.settings, "background")
    for lost in reconcile_once(reg):
        log.warning("composition %s %s: %s", lost.composition_id, lost.action, lost.message)
    at_start(reg)  # scratch folders, work folders and store uploads of processes that died
    stop = threading.Event()
    _background("reconcile", reg.settings.reconcile_interval_seconds, stop, lambda: reconcile_once(reg))
    deliverer = start_delivering(reg)  # webhook deliveries, beside the server's own deliverer
    try:
        if subprocess:
            import asyncio

            host, runner = _stock_runner(limit)
            sync = ScheduleSync(reg, host)
            sync.start()
            _background("schedule-sync", reg.settings.schedule_sync_seconds, stop, sync.sync)
            log.info("serving %d deployments in subprocesses", len(sync.served))
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(runner.start())
        else:
            warm = WarmWorker(limit=limit)
            sync = ScheduleSync(reg, Host(add=warm.add, forget=warm.forget))
            sync.start()
            _background("schedule-sync", reg.settings.schedule_sync_seconds, stop, sync.sync)
            warm.serve_as_owner()
    finally:
        stop.set()
        deliverer.stop()
