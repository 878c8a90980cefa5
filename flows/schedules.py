"""Deployments a worker serves, kept equal to the catalog while it runs.

Fixed: `compose` (triggered runs) and `recompose-stale` (every PEMREG_RECOMPOSE_INTERVAL_SECONDS).
Per stored spec with a `schedule`: one cron deployment of `compose` named after the output. A worker
re-reads the stored specs every PEMREG_SCHEDULE_SYNC_SECONDS: a new or changed schedule is applied, a
removed one deleted, an unchanged one left alone. Re-applying a deployment replaces its schedules and
drops the runs Prefect had scheduled, so an interval deployment re-applied every loop would never come
due: a deployment is applied only when what the API holds differs (schedule, parameters, entrypoint,
paused). A stored spec this version refuses (a cron from an older version, `99 99 99 99 99`) is logged
and skipped; the worker serves everything else.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName, FlowFilter, FlowFilterName
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.exceptions import ObjectNotFound
from pydantic import ValidationError

from registry.errors import RegistryError
from registry.service import Registry
from registry.service.compositions.stored import StoredSpec, scheduled_specs
from registry.spec import CompositionSpec
from registry.spec.loader import describe

from .compose import compose_flow
from .recompose import recompose_stale_flow

log = logging.getLogger("pemreg.worker")
PREFIX = "scheduled-"
PAGE = 200


def deployment_name(output: str) -> str:
    """Readable and unique: `a-b/c` and `a/b-c` differ by the digest suffix."""
    digest = hashlib.sha256(output.encode()).hexdigest()[:8]
    return f"{PREFIX}{output.replace('/', '-')}-{digest}"


def fixed_deployments(reg: Registry) -> list[tuple[Any, Any]]:
    """(flow, deployment): compose (triggered) and recompose-stale (interval)."""
    return [
        (compose_flow, compose_flow.to_deployment(name="compose")),
        (
            recompose_stale_flow,
            recompose_stale_flow.to_deployment(
                name="recompose-stale",
                interval=reg.settings.recompose_interval_seconds,
                # One pass at a time, across every worker: two passes due together both found the same
                # output stale before either began its run, and recomposed it twice. A pass due while
                # one runs is cancelled (the running pass, or the next, sees what it would have).
                concurrency_limit=ConcurrencyLimitConfig(
                    limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
                ),
            ),
        ),
    ]


def scheduled_deployment(stored: StoredSpec) -> Any | None:
    """The cron deployment of a stored spec, or None (logged) when this version refuses the spec."""
    try:
        spec = CompositionSpec.model_validate(stored.spec)
        assert spec.schedule is not None
        return compose_flow.to_deployment(
            name=deployment_name(spec.name),
            cron=spec.schedule,
            parameters={"spec": spec.canonical(), "trigger": "schedule"},
        )
    except (ValidationError, ValueError, RegistryError) as exc:
        if isinstance(exc, ValidationError) and exc.errors():
            first = describe(exc)  # e.g. `schedule: not a cron schedule Prefect accepts: ...`
        else:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        log.error("schedule of %s (stored by run %s) skipped: %s", stored.name, stored.run_id, first)
        return None


def desired(reg: Registry) -> dict[str, Any]:
    """Deployment name -> deployment, for every stored schedule this version accepts."""
    out: dict[str, Any] = {}
    for stored in scheduled_specs(reg):
        deployment = scheduled_deployment(stored)
        if deployment is not None:
            out[deployment.name] = deployment
    return out


def _schedule_key(schedule: Any) -> str:
    cron = getattr(schedule, "cron", None)
    if cron is not None:
        return f"cron {cron} {getattr(schedule, 'timezone', None) or 'UTC'}"
    interval = getattr(schedule, "interval", None)
    if interval is not None:
        return f"interval {interval.total_seconds():g}"
    return repr(schedule)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def same(existing: Any, wanted: Any) -> bool:
    """Whether the API's deployment already is what `wanted` would apply."""
    if existing.paused:
        return False
    have = sorted(_schedule_key(s.schedule) for s in existing.schedules if s.active)
    want = sorted(_schedule_key(s.schedule) for s in wanted.schedules)
    return (
        have == want
        and _canonical(existing.parameters) == _canonical(wanted.model_dump(mode="json")["parameters"])
        and existing.entrypoint == wanted.entrypoint
    )


@dataclass
class Host:
    """Where served deployments are registered: `add(flow, deployment, id_or_None) -> id` (applying it
    when no id is given) and `forget(id)`."""

    add: Callable[[Any, Any, UUID | None], UUID]
    forget: Callable[[UUID], None]


class ScheduleSync:
    def __init__(self, reg: Registry, host: Host) -> None:
        self.reg = reg
        self.host = host
        self.served: dict[str, UUID] = {}  # deployment name -> id, as this worker serves them

    def _existing(self, client: Any, flow_name: str, name: str) -> Any | None:
        try:
            return client.read_deployment_by_name(f"{flow_name}/{name}")
        except ObjectNotFound:
            return None

    def _ensure(self, client: Any, flow: Any, deployment: Any) -> UUID:
        existing = self._existing(client, flow.name, deployment.name)
        if existing is not None and same(existing, deployment):
            deployment_id = self.host.add(flow, deployment, existing.id)
        else:
            deployment_id = self.host.add(flow, deployment, None)
            log.info("applied deployment %s/%s", flow.name, deployment.name)
        self.served[deployment.name] = deployment_id
        return deployment_id

    def start(self) -> None:
        """The fixed deployments (applied only when they differ) and the stored schedules."""
        with get_client(sync_client=True) as client:
            for flow, deployment in fixed_deployments(self.reg):
                self._ensure(client, flow, deployment)
        self.sync()

    def _scheduled_on_api(self, client: Any) -> dict[str, Any]:
        found: dict[str, Any] = {}
        while True:
            page = client.read_deployments(
                flow_filter=FlowFilter(name=FlowFilterName(any_=[compose_flow.name])),
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(like_=PREFIX)),
                limit=PAGE,
                offset=len(found),
            )
            found.update({d.name: d for d in page})
            if len(page) < PAGE:
                return {name: d for name, d in found.items() if name.startswith(PREFIX)}

    def sync(self) -> tuple[int, int]:
        """One pass: apply new and changed schedules, delete removed ones. Returns (applied, removed)."""
        wanted = desired(self.reg)
        applied = removed = 0
        with get_client(sync_client=True) as client:
            on_api = self._scheduled_on_api(client)
            for name, deployment in wanted.items():
                existing = on_api.get(name)
                if existing is not None and same(existing, deployment):
                    if self.served.get(name) != existing.id:
                        self.served[name] = self.host.add(compose_flow, deployment, existing.id)
                    continue
                self.served[name] = self.host.add(compose_flow, deployment, None)
                applied += 1
                log.info("schedule %s: applied deployment %s", deployment.parameters["spec"]["name"], name)
            for name, existing in on_api.items():
                if name in wanted:
                    continue
                with contextlib.suppress(ObjectNotFound):  # another worker removed it first
                    client.delete_deployment(existing.id)
                removed += 1
                log.info("schedule removed: deleted deployment %s", name)
            for name in [n for n in self.served if n.startswith(PREFIX) and n not in wanted]:
                self.host.forget(self.served.pop(name))
        return applied, removed
