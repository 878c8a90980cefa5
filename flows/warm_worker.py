"""A warm in-process executor for our deployments: the default `pemreg worker`.

`flow.serve` starts a new Python interpreter per flow run; here that is ~4-5 s of imports (torch,
prefect, transformers) before any work, which alone breaks the 5 s trigger-to-registered target. This
executor registers the same deployments (with their cron/interval schedules), polls the Prefect API
for their scheduled runs, moves each to Pending and runs it in this already-warm process with
Prefect's own flow engine, so states, logs, task runs and artifacts are exactly those of a served
run. `pemreg worker --subprocess` keeps the stock `flow.serve` behaviour.

The worker is the owner of the runs it executes (registry.service.compositions.runs.register_owner):
its own periodic reconcile never fails one of them as "worker lost", whatever a database stall did to
their heartbeats. Flow runs execute under flows.runners.prefect_api (no Prefect flow-run heartbeat
thread, joined for up to 1 s at the end of each run: our run heartbeat and reconcile watch them).
"""

from __future__ import annotations

import logging
import signal
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterNextScheduledStartTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.exceptions import Abort
from prefect.flow_engine import run_flow
from prefect.states import Pending
from prefect.types import DateTime
from prefect.utilities.engine import propose_state_sync

from registry.service.compositions import runs

from .runners import prefect_api

log = logging.getLogger("pemreg.worker")


class WarmWorker:
    def __init__(
        self, deployments: list[tuple[Any, Any]], *, limit: int = 2, poll_seconds: float = 0.5
    ) -> None:
        self.deployments = deployments  # (flow, RunnerDeployment) pairs
        self.poll_seconds = poll_seconds
        self.pool = ThreadPoolExecutor(max_workers=limit, thread_name_prefix="flow-run")
        self.running: dict[UUID, Future[Any]] = {}
        self.stopping = threading.Event()
        self.limit = limit

    def holds(self, run: Any) -> bool:
        """A composition run whose flow run this worker executes."""
        return run.flow_run_id is not None and any(str(k) == run.flow_run_id for k in list(self.running))

    def register(self) -> dict[UUID, Any]:
        return {deployment.apply(): flow for flow, deployment in self.deployments}

    def _due(self, client: Any, ids: list[UUID], limit: int) -> list[Any]:
        return client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=ids)),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])),
                next_scheduled_start_time=FlowRunFilterNextScheduledStartTime(before_=DateTime.now(UTC)),
            ),
            sort=FlowRunSort.NEXT_SCHEDULED_START_TIME_ASC,
            limit=limit,
        )

    def _claim(self, client: Any, flow_run: Any) -> bool:
        try:
            state = propose_state_sync(client, Pending(), flow_run_id=flow_run.id)
        except Abort:  # another worker claimed it first
            return False
        return state.is_pending()

    def serve(self, flows_by_deployment: dict[UUID, Any]) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stopping.set())
        ids = list(flows_by_deployment)
        log.info("serving %d deployments in-process", len(ids))
        with get_client(sync_client=True) as client:
            while not self.stopping.is_set():
                self.running = {k: f for k, f in self.running.items() if not f.done()}
                free = self.limit - len(self.running)  # never more than `limit` runs at once
                for flow_run in self._due(client, ids, free) if free > 0 else []:
                    if flow_run.id in self.running or not self._claim(client, flow_run):
                        continue
                    log.info("claimed flow run %s (%s)", flow_run.id, flow_run.name)
                    flow = flows_by_deployment[flow_run.deployment_id]
                    self.running[flow_run.id] = self.pool.submit(_run, flow, flow_run)
                self.stopping.wait(self.poll_seconds)
        self.pool.shutdown(wait=True, cancel_futures=False)


def _run(flow: Any, flow_run: Any) -> Any:
    with prefect_api(None):
        return run_flow(flow, flow_run=flow_run, return_type="state")


def serve_in_process(deployments: list[tuple[Any, Any]], *, limit: int = 2) -> None:
    worker = WarmWorker(deployments, limit=limit)
    runs.register_owner(worker)
    try:
        worker.serve(worker.register())
    finally:
        runs.unregister_owner(worker)
