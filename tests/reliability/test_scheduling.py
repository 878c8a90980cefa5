"""Schedules and recomposition on real processes, with Prefect's own scheduler running: a `prefect
server` on PostgreSQL (scheduler loop 2 s), SeaweedFS, `pemreg serve` and one `pemreg worker`.

The campaign found: a cron spec posted while a worker runs never got a deployment (0 runs in 160 s);
a scheduled run acted as the worker's OS user, so a spec refused over REST (a dataset outside the
roots) was run anyway by its schedule; a stored `99 99 99 99 99` stopped every worker at start. Here:
- the worker starts beside a legacy bad cron row (logged, skipped);
- a `* * * * *` spec posted over REST while the worker runs fires within a bounded wait, acting as
  the key that stored it (trigger `schedule`, principal the key's name);
- a legacy laundering row (a schedule with a dataset outside the roots, stored by an old version)
  fires and is refused at start as its key: `failed`, saying why, the file never read;
- a revoked key's schedule stops, and its run's error says the key was revoked;
- a newer submission without `schedule` removes the deployment within the sync bound;
- a parent-driven recomposition (`recompose: on_parent_update`) runs end to end as the key that
  stored it when a new parent version is registered.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from registry import service
from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.service.admin.keys import create_key, revoke_key
from registry.service.compositions import runs
from registry.spec import load_spec
from tests.factories import make_lora
from tests.s3_service import S3Service
from tests.stack import ProcessStack, open_stack

pytestmark = [pytest.mark.postgres, pytest.mark.s3]

FIRE_SECONDS = 150  # the next minute boundary, Prefect's scheduler loop, the worker's poll, the run
SYNC_SECONDS = 2
# The recompose-stale interval. At 2 s, passes due together overlapped in the worker and both
# recomposed the same stale output, before the deployment allowed one pass at a time; the test's
# "exactly one recomposition" check runs at 2 s for that reason.
RECOMPOSE_SECONDS = 2


def _post(stack: ProcessStack, key: str, spec: dict[str, Any]) -> dict[str, Any]:
    r = httpx.post(
        f"{stack.api_url}/v1/compositions", json=spec, headers={"Authorization": f"Bearer {key}"}, timeout=60
    )
    assert r.status_code == 202, r.text
    return dict(r.json())


def _rows(stack: ProcessStack, name: str, trigger: str) -> list[m.Composition]:
    with stack.reg.sessions() as session:
        query = select(m.Composition).where(
            m.Composition.output_name == name, m.Composition.trigger == trigger
        )
        return list(session.scalars(query.order_by(m.Composition.created_at)))


def _wait_row(stack: ProcessStack, name: str, trigger: str, timeout: float = FIRE_SECONDS) -> m.Composition:
    """The first terminal run of `name` made by `trigger`, within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [r for r in _rows(stack, name, trigger) if r.status in ("succeeded", "failed", "rejected")]
        if done:
            return done[0]
        assert stack.procs["w"].poll() is None, stack.log("w").read_text()[-3000:]
        time.sleep(1)
    raise AssertionError(
        f"no {trigger} run of {name} in {timeout:.0f} s: {stack.log('w').read_text()[-3000:]}"
    )


def _secret(stack: ProcessStack) -> Path:
    return stack.root / "outside" / "secret.jsonl"


def _legacy_row(stack: ProcessStack, spec_text: str, key_name: str, **raw: Any) -> None:
    """A spec as an older version stored it over REST (its checks passed then), written directly: the
    columns migrations 0008 and 0010 fill for such a row (the key's row, the principal `key:<name>`)."""
    row = runs.create(stack.reg, load_spec(spec_text), [], "api")
    with transaction(stack.reg.sessions) as session:
        key_id = session.scalar(select(m.ApiKey.id).where(m.ApiKey.name == key_name))
        values: dict[str, Any] = {
            "spec": {**row.spec, **raw},
            "principal": f"key:{key_name}",
            "api_key_id": key_id,
            "status": "failed",
            "error": "stored by an older version",
        }
        session.execute(update(m.Composition).where(m.Composition.id == row.id).values(**values))


@pytest.fixture(scope="module")
def stack(s3_service: S3Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessStack]:
    root = tmp_path_factory.mktemp("scheduling")
    stack = open_stack(
        root / "stack",
        s3_service,
        PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="2",
        PEMREG_SCHEDULE_SYNC_SECONDS=str(SYNC_SECONDS),
        PEMREG_RECOMPOSE_INTERVAL_SECONDS=str(RECOMPOSE_SECONDS),
    )
    try:
        secret = _secret(stack)
        secret.parent.mkdir()
        secret.write_text('{"text": "a file on the worker that no REST caller may name"}\n')
        # Before the worker starts: a bad cron and a laundering spec, as an older version stored them.
        _legacy_row(
            stack,
            "name: stack/legacy-bad\nexpression: 'stack/a'\n",
            "stack-writer",
            schedule="99 99 99 99 99",
        )
        _legacy_row(
            stack,
            "name: stack/launder\nexpression: '0.5 * stack/a + 0.5 * stack/b'\n",
            "stack-writer",
            schedule="* * * * *",
            evaluate=[{"name": "ppl", "metric": "perplexity", "dataset": secret.as_uri()}],
        )
        stack.start_worker("w")
        stack.wait_workers_serving(["w"])
        yield stack
    finally:
        stack.close()


@pytest.fixture(scope="module", autouse=True)
def cron_posted(stack: ProcessStack) -> dict[str, Any]:
    """A `* * * * *` spec posted over REST while the worker runs, and one stored by a key then revoked:
    posted before the module's first test, checked by its last, so the wait for the next minute
    boundary overlaps the other tests instead of adding to them."""
    bot = create_key(stack.reg, "nightly-bot", "writer")
    spec = {"name": "stack/cron", "expression": "0.25 * stack/a + 0.75 * stack/b", "schedule": "* * * * *"}
    first = _post(stack, stack.writer_key, spec)
    revoked = {
        "name": "stack/revoked",
        "expression": "0.75 * stack/a + 0.25 * stack/b",
        "schedule": "* * * * *",
    }
    _post(stack, bot, revoked)
    revoke_key(stack.reg, "nightly-bot")  # its schedule must stop, saying why
    return first


def test_the_worker_starts_beside_a_stored_bad_cron(stack: ProcessStack) -> None:
    log = stack.log("w").read_text()
    assert "schedule of stack/legacy-bad" in log and "skipped" in log, log[-3000:]
    assert stack.procs["w"].poll() is None


def test_a_newer_spec_without_schedule_removes_the_deployment(stack: ProcessStack) -> None:
    spec = {"name": "stack/once", "expression": "0.4 * stack/a + 0.6 * stack/b", "schedule": "0 3 * * *"}
    _post(stack, stack.writer_key, spec)

    def names() -> set[str]:
        found = httpx.post(f"{stack.prefect_url}/deployments/filter", json={"limit": 200}, timeout=30).json()
        return {d["name"] for d in found}

    deadline = time.monotonic() + 10 * SYNC_SECONDS + 20
    while not any(n.startswith("scheduled-stack-once-") for n in names()):
        assert time.monotonic() < deadline, names()
        time.sleep(1)
    _post(stack, stack.writer_key, {k: v for k, v in spec.items() if k != "schedule"})
    while any(n.startswith("scheduled-stack-once-") for n in names()):
        assert time.monotonic() < deadline + 30, names()
        time.sleep(1)
    assert not any(n.startswith("scheduled-stack-legacy-bad") for n in names())


def test_a_parent_update_recomposes_end_to_end_as_the_key(stack: ProcessStack, tmp_path: Path) -> None:
    spec = {
        "name": "stack/follow",
        "expression": "0.5 * stack/a + 0.5 * stack/b",
        "recompose": "on_parent_update",
    }
    first = _post(stack, stack.writer_key, spec)
    deadline = time.monotonic() + 120
    while (
        row := next(r for r in _rows(stack, "stack/follow", "api") if r.id == first["id"])
    ).status != "succeeded":
        assert row.status in ("pending", "running") and time.monotonic() < deadline, (row.status, row.error)
        time.sleep(1)
    service.register_adapter(stack.reg, make_lora(tmp_path / "a2", seed=9), "stack/a")  # stack/a@2
    again = _wait_row(stack, "stack/follow", "recompose", timeout=120)
    assert again.status == "succeeded", again.error
    with stack.reg.sessions() as session:
        writer_key = session.scalar(select(m.ApiKey.id).where(m.ApiKey.name == "stack-writer"))
    assert again.principal == "key:stack-writer" and again.api_key_id == writer_key
    assert {(i["name"], i["version"]) for i in again.resolved_inputs} == {("stack/a", 2), ("stack/b", 1)}
    version = service.get_version(stack.reg, "stack/follow@2")
    assert version.created_by == "key:stack-writer"
    # Three more recompose-stale passes, each started after the recomposition ended: still one.
    assert again.finished_at is not None
    _wait_passes_after(stack, again.finished_at.timestamp(), 3)
    assert len(_rows(stack, "stack/follow", "recompose")) == 1


def _wait_passes_after(stack: ProcessStack, after: float, n: int) -> None:
    """`n` recompose-stale flow runs (the worker's passes) that started after `after` and completed."""
    body = {
        "flows": {"name": {"any_": ["recompose-stale"]}},
        "flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}},
        "limit": 200,
    }
    deadline = time.monotonic() + n * RECOMPOSE_SECONDS + 60
    while True:
        found = httpx.post(f"{stack.prefect_url}/flow_runs/filter", json=body, timeout=30).json()
        started = [r["start_time"] for r in found if r["start_time"] and _stamp(r["start_time"]) > after]
        if len(started) >= n:
            return
        assert time.monotonic() < deadline, (len(started), stack.log("w").read_text()[-3000:])
        time.sleep(0.5)


def _stamp(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


# The two schedules' checks last: both wait for a minute boundary, which the tests above overlap.
def test_a_laundering_schedule_is_refused_when_it_starts(stack: ProcessStack) -> None:
    refused = _wait_row(stack, "stack/launder", "schedule")
    assert refused.status == "failed" and refused.principal == "key:stack-writer"
    assert "evaluate[0].dataset" in (refused.error or "") and "allowed source root" in (refused.error or "")
    with stack.reg.sessions() as session:
        read = session.scalars(
            select(m.Evaluation).where(m.Evaluation.dataset_uri == _secret(stack).as_uri())
        )
        assert list(read) == []


def test_a_cron_spec_posted_while_the_worker_runs_fires_as_its_key(
    stack: ProcessStack, cron_posted: dict[str, Any]
) -> None:
    first = cron_posted  # the module's fixture posted it, and the revoked key's, before the first test
    fired = _wait_row(stack, "stack/cron", "schedule")
    assert fired.status == "succeeded", fired.error
    assert fired.principal == "key:stack-writer" and fired.api_key_id is not None
    assert fired.id != first["id"] and fired.flow_run_id
    flow_run = httpx.get(f"{stack.prefect_url}/flow_runs/{fired.flow_run_id}", timeout=30).json()
    deployment = httpx.get(f"{stack.prefect_url}/deployments/{flow_run['deployment_id']}", timeout=30).json()
    assert deployment["name"].startswith("scheduled-stack-cron-")

    # Applied once, then left alone by every later sync (re-applying resets a schedule's runs).
    log = stack.log("w").read_text()
    assert log.count("schedule stack/cron: applied deployment") == 1, log[-3000:]
    assert log.count("applied deployment recompose-stale/recompose-stale") <= 1, log[-3000:]

    stopped = _wait_row(stack, "stack/revoked", "schedule")
    assert stopped.status == "failed" and stopped.principal == "key:nightly-bot"
    assert "was revoked" in (stopped.error or ""), stopped.error
