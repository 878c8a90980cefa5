"""Scale-out on real processes: a `prefect server` on PostgreSQL, SeaweedFS, `pemreg serve` and three
`pemreg worker` processes; 16 compositions submitted at once over REST.

Checked: every run executes exactly once (one completed Prefect flow run per run; a lost run has one
crashed flow run before it), all succeed, the work spreads over the workers, the `gpu` global
concurrency limit (1) is never exceeded although runs overlap, and the worker killed mid-run has its
runs reconciled and retried by another worker.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry import service
from registry.service.catalog.audit import list_events
from registry.service.compositions import reads as compositions
from registry.service.compositions.status import RunStatus
from tests.s3_service import S3Service
from tests.stack import ProcessStack, open_stack, spec

pytestmark = [pytest.mark.postgres, pytest.mark.s3]

# Enough for every check below (each surviving worker runs >= 3, >= 5 runs overlap) with margin; 30 took
# twice as long and proved nothing more.
RUNS = 16
FINISH_SECONDS = 420  # the runs on 2 shared cores, plus a lost worker's reconcile and retry


def _submit(stack: ProcessStack, n: int) -> list[str]:
    headers = {"Authorization": f"Bearer {stack.writer_key}"}
    with httpx.Client(base_url=stack.api_url, headers=headers, timeout=60) as client:

        def one(i: int) -> str:
            r = client.post("/v1/compositions", json=spec(i, stack.dataset_uri))
            assert r.status_code == 202, r.text
            body = r.json()
            assert body["status"] == "pending" and body["flow_run_id"], body
            return str(body["id"])

        with ThreadPoolExecutor(max_workers=n) as pool:  # all at once
            return list(pool.map(one, range(n)))


def _flow_runs(prefect_url: str) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    with httpx.Client(base_url=prefect_url, timeout=30) as client:
        while True:
            page = client.post("/flow_runs/filter", json={"limit": 200, "offset": len(got)}).json()
            got += page
            if len(page) < 200:
                return got


def _settled_flow_runs(prefect_url: str, ids: list[str], deadline: float) -> dict[str, Counter[str]]:
    """The state types of each run's flow runs, once none is still open: a flow commits its catalog
    row before it returns, so the catalog can read `succeeded` while Prefect still says RUNNING."""
    while True:
        by_run: dict[str, Counter[str]] = {}
        for fr in _flow_runs(prefect_url):
            run_id = (fr.get("parameters") or {}).get("composition_id")
            if run_id in ids:
                by_run.setdefault(run_id, Counter())[fr["state_type"]] += 1
        still_open = {t for states in by_run.values() for t in states} & {"SCHEDULED", "PENDING", "RUNNING"}
        if not still_open or time.monotonic() >= deadline:
            return by_run
        time.sleep(0.5)


def _stamp(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def test_compositions_submitted_at_once_on_three_workers(s3_service: S3Service, tmp_path: Path) -> None:
    stack = open_stack(
        tmp_path / "stack",
        s3_service,
        PEMREG_HEARTBEAT_SECONDS="0.5",
        PEMREG_RUN_STALE_AFTER_SECONDS="8",
        PEMREG_RECONCILE_INTERVAL_SECONDS="1",
    )
    marks = tmp_path / "marks"
    marks.mkdir()
    try:
        # w1 (one run at a time) stops its run just before the catalog commit, and is killed there.
        stack.start_worker(
            "w1", "--limit", "1", PEMREG_FAILPOINTS="before_commit", PEMREG_FAILPOINT_DIR=str(marks)
        )
        stack.start_worker("w2")
        stack.start_worker("w3")
        stack.wait_workers_serving(["w1", "w2", "w3"])
        ids = _submit(stack, RUNS)

        deadline = time.monotonic() + FINISH_SECONDS
        while not (marks / "before_commit").exists():
            assert time.monotonic() < deadline, stack.log("w1").read_text()[-3000:]
            time.sleep(0.2)
        w1 = f":{stack.procs['w1'].pid}"
        lost_ids = [
            v.id
            for v in (compositions.get(stack.reg, i) for i in ids)
            if v.status is RunStatus.RUNNING and (v.worker or "").endswith(w1)
        ]
        stack.kill("w1")
        assert len(lost_ids) == 1, lost_ids  # the run w1 held when it was killed

        while True:
            views = [compositions.get(stack.reg, i) for i in ids]
            if all(v.status.terminal for v in views):
                break
            assert time.monotonic() < deadline, (
                Counter(v.status.value for v in views),
                stack.log("w2").read_text()[-2000:],
            )
            time.sleep(1)

        # All succeeded, each registered its own output version once, with both parents.
        assert [v.status for v in views] == [RunStatus.SUCCEEDED] * RUNS, [
            (v.id, v.status, v.error) for v in views if v.status is not RunStatus.SUCCEEDED
        ]
        outputs = [(v.output.name, v.output.version) for v in views if v.output]
        assert sorted(outputs) == sorted((f"stack/sum-{i:03d}", 1) for i in range(RUNS))
        for name, version in outputs[:5]:
            parents = {e.parent for e in service.lineage(stack.reg, f"{name}@{version}").edges}
            assert parents == {"stack/a@1", "stack/b@1"}

        # Exactly once: one completed flow run per run; the lost ones also have one crashed flow run.
        by_run = _settled_flow_runs(stack.prefect_url, ids, deadline)
        for v in views:
            expected = {"COMPLETED": 1, "CRASHED": 1} if v.id in lost_ids else {"COMPLETED": 1}
            assert by_run.get(v.id) == Counter(expected), (v.id, by_run.get(v.id))

        # The lost runs: reconciled (no heartbeat from w1), retried once, finished by another worker.
        retried = {
            e.details.get("composition_id")
            for e in list_events(stack.reg, actor="reconcile", limit=500)
            if e.action == "compose_retried"
        }
        assert retried == set(lost_ids)
        for v in views:
            if v.id in lost_ids:
                assert v.attempt == 2 and not (v.worker or "").endswith(w1), (v.attempt, v.worker)
                assert "worker lost: no heartbeat since" in (v.error or ""), v.error
            else:
                assert v.attempt == 1
        spread = Counter(v.worker for v in views)
        assert len(spread) == 2 and min(spread.values()) >= 3, spread  # w2 and w3 both did real work

        # The `gpu` limit (1): the guarded sections of all runs never overlap, although runs did.
        holds = sorted(
            (_stamp(h["acquired"]), _stamp(h["released"]), v.id)
            for v in views
            for h in v.timings.get("device", [])
        )
        assert len(holds) >= 2 * RUNS, len(holds)  # compose + evaluate of each run, at least
        overlaps = [(a, b) for a, b in zip(holds, holds[1:], strict=False) if b[0] < a[1]]
        assert overlaps == [], overlaps[:3]
        spans = sorted((_stamp(v.started_at.isoformat()), _stamp(v.finished_at.isoformat())) for v in views)
        concurrent = sum(1 for a, b in zip(spans, spans[1:], strict=False) if b[0] < a[1])
        assert concurrent >= 5, concurrent  # runs did run side by side: the limit is what kept holds apart
    finally:
        stack.close()
