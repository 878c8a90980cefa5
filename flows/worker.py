"""`pemreg worker`: serve the compose, recompose-stale and scheduled-spec deployments.

By default runs execute in this warm process (flows/warm_worker.py); `subprocess=True` uses the stock
`flow.serve` (one interpreter per run). On GPU machines the same flows can instead be deployed to a
Prefect work pool (`compose_flow.deploy(...)`) and run by `prefect worker start` unchanged.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from prefect import serve

from registry.service import Registry
from registry.service.admin import metrics
from registry.service.compositions import runs
from registry.service.compositions.inputs import scheduled_specs
from registry.service.events.deliverer import start_delivering
from registry.settings import Settings

from .compose import compose_flow
from .recompose import recompose_stale_flow
from .runners import install, resubmit
from .warm_worker import serve_in_process

log = logging.getLogger("pemreg.worker")


def deployments(reg: Registry) -> list[tuple[Any, Any]]:
    """(flow, deployment) pairs: compose (triggered), recompose-stale (interval), one per scheduled spec."""
    out = [
        (compose_flow, compose_flow.to_deployment(name="compose")),
        (
            recompose_stale_flow,
            recompose_stale_flow.to_deployment(
                name="recompose-stale", interval=reg.settings.recompose_interval_seconds
            ),
        ),
    ]
    for name, spec in scheduled_specs(reg):
        out.append(
            (
                compose_flow,
                compose_flow.to_deployment(
                    name=f"scheduled-{name.replace('/', '-')}",
                    cron=spec["schedule"],
                    parameters={"spec": spec, "trigger": "schedule"},
                ),
            )
        )
    return out


def reconcile_once(reg: Registry) -> list[runs.Reconciled]:
    try:
        done = runs.reconcile(reg, restart=resubmit)
        metrics.runs_reconciled(d.action for d in done)
        return done
    except Exception as exc:  # noqa: BLE001 - the catalog briefly away must not stop the worker
        log.warning("reconcile failed: %s", runs.one_line(exc))
        return []


def _reconcile_periodically(reg: Registry, stop: threading.Event) -> None:
    while not stop.wait(reg.settings.reconcile_interval_seconds):
        reconcile_once(reg)


def run_worker(limit: int = 2, subprocess: bool = False) -> None:
    """Reconcile runs lost by an earlier worker, then serve; reconcile again every few seconds
    (settings.reconcile_interval_seconds) so a run lost by another worker ends within minutes."""
    log.setLevel(logging.INFO)  # a service: say what it serves and claims (warm_worker logs here too)
    reg = Registry(Settings())
    install(reg.settings, "background")
    for lost in reconcile_once(reg):
        log.warning("composition %s %s: %s", lost.composition_id, lost.action, lost.message)
    stop = threading.Event()
    threading.Thread(target=_reconcile_periodically, args=(reg, stop), name="reconcile", daemon=True).start()
    deliverer = start_delivering(reg)  # webhook deliveries, beside the server's own deliverer
    pairs = deployments(reg)
    try:
        if subprocess:
            serve(*(d for _, d in pairs), limit=limit)
        else:
            serve_in_process(pairs, limit=limit)
    finally:
        stop.set()
        deliverer.stop()
