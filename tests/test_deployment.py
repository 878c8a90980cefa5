"""The deployment path for real: a `prefect server` process, a `pemreg worker`, and `pemreg compose --wait`
submitting through the `compose/compose` deployment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows import local_server
from registry import service
from registry.service import Registry
from registry.settings import Settings
from tests.cli_inproc import pemreg
from tests.factories import make_lora, save_tiny_base
from tests.flow_fixtures import settings_env


@pytest.fixture
def api_url(warm_home: tuple[Path, int]) -> str:
    """The session's Prefect server (tests/prefect_service.py): a `prefect server` process like the one
    each test used to start for itself (~15-20 s a start), with one test file on it at a time."""
    return local_server.ensure_running(*warm_home)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # serve may sit out SIGTERM; it holds nothing we need
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def test_compose_through_deployment_and_worker(api_url: str, tmp_path: Path) -> None:
    reg = Registry(
        Settings(
            home=tmp_path / "home",
            database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
            artifact_store=(tmp_path / "store").as_uri(),
            principal="ops",
        )
    )
    from registry.catalog.migrate import upgrade

    upgrade(reg.settings.resolved_database_url)
    service.add_base_model(reg, "tiny-llama", source=str(save_tiny_base(tmp_path / "base")))
    service.register_adapter(reg, make_lora(tmp_path / "a", seed=1), "t/a")
    service.register_adapter(reg, make_lora(tmp_path / "b", seed=2), "t/b")
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: t/deployed\nexpression: '0.5 * t/a + 0.5 * t/b'\n")

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PEMREG_", "PREFECT_"))}
    env.update(
        settings_env(reg),
        PREFECT_API_URL=api_url,
        PREFECT_HOME=str(tmp_path / "client"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_RUNNER_POLL_FREQUENCY="1",
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "api.cli.main", "worker"],
        env=env,
        start_new_session=True,
        stdout=(tmp_path / "worker.log").open("wb"),  # noqa: SIM115 - the child process owns it
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        result = None
        while time.monotonic() < deadline:  # the deployment exists once the worker has registered it
            result = subprocess.run(
                [sys.executable, "-m", "api.cli.main", "compose", str(spec), "--wait", "--json"],
                env=env,
                capture_output=True,
                text=True,
                timeout=180,
            )
            if result.returncode == 0 or "not found" not in result.stderr.lower():
                break
            time.sleep(0.5)  # a retry is a cheap command once the local runner is warm
        assert result is not None and result.returncode == 0, (
            result and result.stderr,
            (tmp_path / "worker.log").read_text()[-3000:],
        )
        view = json.loads(result.stdout)
        assert view["status"] == "succeeded" and view["flow_run_id"]
        assert view["output"]["name"] == "t/deployed" and view["output"]["version"] == 1
        assert view["trigger"] == "cli"
        edges = service.lineage(reg, "t/deployed@1").edges
        assert {(e.parent, e.weight) for e in edges} == {("t/a@1", 0.5), ("t/b@1", 0.5)}
    finally:
        _stop(worker)


def _worker(env: dict[str, str], log: Path, **extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "api.cli.main", "worker"],
        env={**env, **extra},
        start_new_session=True,
        stdout=log.open("wb"),  # noqa: SIM115 - the child process owns it
        stderr=subprocess.STDOUT,
    )


def test_killed_worker_run_is_reconciled_collected_and_rerun(
    reg: Registry, api_url: str, tmp_path: Path
) -> None:
    """SIGKILL the worker running a deployment run just before its catalog commit (PostgreSQL + S3 and
    SQLite + file): the next worker reconciles the run (failed, flow run Crashed), `pemreg gc` lists and
    removes exactly what it had uploaded, and the same spec then composes."""
    from flows.runners import PrefectProbe
    from registry.service.compositions import reads as compositions
    from registry.service.compositions.status import RunStatus

    service.add_base_model(reg, "tiny-llama", source=str(save_tiny_base(tmp_path / "base")))
    service.register_adapter(reg, make_lora(tmp_path / "a", seed=1), "t/a")
    service.register_adapter(reg, make_lora(tmp_path / "b", seed=2), "t/b")
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: t/deployed\nexpression: '0.5 * t/a + 0.5 * t/b'\n")
    marks = tmp_path / "marks"
    marks.mkdir()

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PEMREG_", "PREFECT_"))}
    env.update(
        settings_env(reg),
        PREFECT_API_URL=api_url,
        PREFECT_HOME=str(tmp_path / "client"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PEMREG_HEARTBEAT_SECONDS="0.5",
        PEMREG_RUN_STALE_AFTER_SECONDS="3",
        PEMREG_RECONCILE_INTERVAL_SECONDS="1",
    )
    cli = [sys.executable, "-m", "api.cli.main"]
    first = _worker(
        env, tmp_path / "worker1.log", PEMREG_FAILPOINTS="before_commit", PEMREG_FAILPOINT_DIR=str(marks)
    )
    second = None
    try:
        deadline = time.monotonic() + 90
        while True:  # the deployment exists once the worker has registered it
            submitted = subprocess.run(
                [*cli, "compose", str(spec), "--json"], env=env, capture_output=True, text=True, timeout=120
            )
            if submitted.returncode == 0 or time.monotonic() > deadline:
                break
            assert "not found" in submitted.stderr.lower(), submitted.stderr
            time.sleep(0.5)
        assert submitted.returncode == 0, submitted.stderr
        run_id = json.loads(submitted.stdout)["id"]
        deadline = time.monotonic() + 120
        while not (marks / "before_commit").exists():
            assert first.poll() is None and time.monotonic() < deadline, (
                tmp_path / "worker1.log"
            ).read_text()[-3000:]
            time.sleep(0.2)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        lost = compositions.get(reg, run_id)
        assert lost.status is RunStatus.RUNNING and lost.flow_run_id

        second = _worker(env, tmp_path / "worker2.log")
        deadline = time.monotonic() + 90
        while (view := compositions.get(reg, run_id)).status is RunStatus.RUNNING:
            assert time.monotonic() < deadline, (tmp_path / "worker2.log").read_text()[-3000:]
            time.sleep(0.5)
        assert view.status is RunStatus.FAILED and (view.error or "").startswith(
            "worker lost: no heartbeat since"
        )
        # The row is committed first and Prefect's state follows it (runs.reconcile: the row is what
        # users read, the UI may lag a request behind): wait for it, bounded.
        deadline = time.monotonic() + 15
        while (state := PrefectProbe(api_url).state(lost.flow_run_id).type) != "CRASHED":
            assert time.monotonic() < deadline, state
            time.sleep(0.2)
        assert state == "CRASHED"

        listed = pemreg(env, "gc", "--dry-run", "--grace", "0", "--json")  # in process (tests/cli_inproc.py)
        [orphan] = [o for o in json.loads(listed.stdout) if o["kind"] == "store"]
        assert orphan["folder"].startswith("adapters/t/deployed/")
        assert sorted(k.rsplit("/", 1)[1] for k in orphan["keys"]) == [
            "README.md",
            "adapter_config.json",
            "adapter_model.safetensors",
            "provenance.json",
        ]
        removed = pemreg(env, "gc", "--grace", "0", "--json")
        assert [o["folder"] for o in json.loads(removed.stdout) if o["kind"] == "store"] == [orphan["folder"]]
        assert reg.store.list_keys(orphan["folder"] + "/") == []

        again = subprocess.run(
            [*cli, "compose", str(spec), "--wait", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert again.returncode == 0, (again.stderr, (tmp_path / "worker2.log").read_text()[-3000:])
        done = json.loads(again.stdout)
        assert done["status"] == "succeeded" and done["output"]["version"] == 1 and done["id"] != run_id
        assert sorted(reg.store.list_keys(orphan["folder"] + "/")) == sorted(
            orphan["keys"]
        )  # same bytes, now owned
        active = [c for c in compositions.list_compositions(reg).items if not c.status.terminal]
        assert active == []
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        if second is not None:
            _stop(second)
