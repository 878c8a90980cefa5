"""A warm in-process executor for our deployments: the default `pemreg worker`.

`flow.serve` starts a new Python interpreter per flow run; here that is ~4-5 s of imports (torch,
prefect, transformers) before any work, which alone breaks the 5 s trigger-to-registered target. This
executor serves the same deployments (with their cron/interval schedules), polls the Prefect API
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
    """Serves the deployments it is given; `add` / `forget` change that set while it serves (the
    schedule sync of flows/worker.py), so a schedule stored later is picked up without a restart."""

    def __init__(self, *, limit: int = 2, poll_seconds: float = 0.5) -> None:
        self.poll_seconds = poll_seconds
        self.pool = ThreadPoolExecutor(max_workers=limit, thread_name_prefix="flow-run")
        self.running: dict[UUID, Future[Any]] = {}
        self.stopping = threading.Event()
        self.limit = limit
        self._flows: dict[UUID, Any] = {}  # deployment id -> the flow its runs execute
        self._lock = threading.Lock()

    def add(self, flow: Any, deployment: Any, deployment_id: UUID | None = None) -> UUID:
        """Serve `deployment` (applied to the API unless its id is given: it is there already)."""
        if deployment_id is None:
            deployment_id = deployment.apply()
        assert deployment_id is not None
        with self._lock:
            self._flows[deployment_id] = flow
        return deployment_id

    def forget(self, deployment_id: UUID) -> None:
        with self._lock:
            self._flows.pop(deployment_id, None)

    def _served(self) -> dict[UUID, Any]:
        with self._lock:
            return dict(self._flows)

    def holds(self, run: Any) -> bool:
        """A composition run whose flow run this worker executes."""
        return run.flow_run_id is not None and any(str(k) == run.flow_run_id for k in list(self.running))

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

    def serve(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stopping.set())
        log.info("serving %d deployments in-process", len(self._served()))
        with get_client(sync_client=True) as client:
            while not self.stopping.is_set():
                self.running = {k: f for k, f in self.running.items() if not f.done()}
                free = self.limit - len(self.running)  # never more than `limit` runs at once
                flows = self._served()
                for flow_run in self._due(client, list(flows), free) if free > 0 and flows else []:
                    flow = flows.get(flow_run.deployment_id)
                    if flow is None or flow_run.id in self.running or not self._claim(client, flow_run):
                        continue
                    log.info("claimed flow run %s (%s)", flow_run.id, flow_run.name)
                    self.running[flow_run.id] = self.pool.submit(_run, flow, flow_run)
                self.stopping.wait(self.poll_seconds)
        self.pool.shutdown(wait=True, cancel_futures=False)

    def serve_as_owner(self) -> None:
        """`serve`, registered as the owner of the runs it executes (reconcile leaves them alone)."""
        runs.register_owner(self)
        try:
            self.serve()
        finally:
            runs.unregister_owner(self)


def _run(flow: Any, flow_run: Any) -> Any:
    with prefect_api(None):
        return run_flow(flow, flow_run=flow_run, return_type="state")
