"""`pemreg worker`: serve the compose, recompose-stale and scheduled-spec deployments from this process.

`flow.serve`-style serving needs no work pool; on GPU machines the same flows can instead be deployed to
a Prefect work pool (`compose_flow.deploy(...)`) and run by `prefect worker start` unchanged.
"""

from __future__ import annotations

from typing import Any

from prefect import serve

from registry.service import Registry
from registry.service.compose_inputs import scheduled_specs
from registry.settings import Settings

from .compose import compose_flow
from .recompose import recompose_stale_flow


def deployments(reg: Registry) -> list[Any]:
    out = [
        compose_flow.to_deployment(name="compose"),
        recompose_stale_flow.to_deployment(name="recompose-stale",
                                           interval=reg.settings.recompose_interval_seconds),
    ]
    for name, spec in scheduled_specs(reg):
        out.append(compose_flow.to_deployment(
            name=f"scheduled-{name.replace('/', '-')}", cron=spec["schedule"],
            parameters={"spec": spec, "trigger": "schedule"},
        ))
    return out


def run_worker(limit: int | None = None) -> None:
    reg = Registry(Settings())
    serve(*deployments(reg), limit=limit)
