"""`pemreg worker`: serve the compose, recompose-stale and scheduled-spec deployments.

By default runs execute in this warm process (flows/warm_worker.py); `subprocess=True` uses the stock
`flow.serve` (one interpreter per run). On GPU machines the same flows can instead be deployed to a
Prefect work pool (`compose_flow.deploy(...)`) and run by `prefect worker start` unchanged.
"""

from __future__ import annotations

from typing import Any

from prefect import serve

from registry.service import Registry
from registry.service.compose_inputs import scheduled_specs
from registry.settings import Settings

from .compose import compose_flow
from .recompose import recompose_stale_flow
from .warm_worker import serve_in_process


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


def run_worker(limit: int = 2, subprocess: bool = False) -> None:
    pairs = deployments(Registry(Settings()))
    if subprocess:
        serve(*(d for _, d in pairs), limit=limit)
    else:
        serve_in_process(pairs, limit=limit)
