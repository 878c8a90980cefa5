"""Runs of the embedded default on a real `pemreg serve`: a bounded executor, and an owner that never
fails its own live run (issue 18, items 4 and 7).

- Eight concurrent compositions of 20 MB LoRAs: the server's memory grows by what its fixed pool of
  workers holds, not by one composition per request (the old thread per request: ~4x more here).
- A database stall while a run computes, which leaves the run's last beat older than the stale-after
  window: the server's own reconcile loop (every 0.2 s, so before the run's next beat, every 5 s)
  leaves the run alone; a run waiting in its queue is claimed and beaten too, a run beyond the queue
  is refused with 503 before any row exists; once the server is killed, another process finds both
  held runs lost.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from benchmarks.memory_8b import write_llama_lora
from registry import service
from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.catalog.migrate import upgrade
from registry.service import Registry
from registry.service.admin.keys import create_key
from registry.service.compositions import reads as compositions
from registry.service.compositions import runs
from registry.service.compositions.status import RunStatus
from registry.settings import Settings
from tests.factories import make_lora, save_tiny_base
from tests.failpoint_marks import failpoint_pid
from tests.live_server import _wait_ready, clean_env, free_port
from tests.pg_service import truncate_all
from tests.reliability.tcp_proxy import FreezableProxy

WORKERS = 2  # the default pool


@contextmanager
def serve(env: dict[str, str], log: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "api.cli.main", "serve", "--port", str(port), "--log-level", "warning"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, log)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=15)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def finish(url: str, headers: dict[str, str], ids: list[str], timeout: float = 300) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = [httpx.get(f"{url}/v1/compositions/{i}", headers=headers).json()["status"] for i in ids]
        if all(s not in ("pending", "running") for s in states):
            return states
        time.sleep(0.3)
    raise AssertionError(f"runs did not finish: {states}")


def test_server_memory_is_bounded_by_its_pool_under_8_concurrent_large_compositions(
    warm_home: tuple[Path, int], tmp_path: Path
) -> None:
    home, port = warm_home
    settings = Settings(
        home=home,
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        artifact_store=(tmp_path / "store").as_uri(),
        principal="setup",
    )
    upgrade(settings.resolved_database_url)
    reg = Registry(settings)
    reg.store.ensure_ready()
    service.add_base_model(reg, "llama-bench", source="llama-bench")
    for i in range(2):  # 20 MB each: Llama-shaped (hidden 2048, 8 layers), rank 16
        folder = write_llama_lora(tmp_path / f"a{i}", 2048, 5632, 8, 2048, seed=i)
        service.register_adapter(reg, folder, f"big/a{i}", base_model="llama-bench")
    headers = {"Authorization": f"Bearer {create_key(reg, 'writer', 'writer')}"}
    env = clean_env(
        PEMREG_HOME=str(home),
        PEMREG_LOCAL_PREFECT_PORT=str(port),
        PEMREG_DATABASE_URL=settings.resolved_database_url,
        PEMREG_ARTIFACT_STORE=settings.resolved_artifact_store,
        PEMREG_COMPOSE_WORKERS=str(WORKERS),
    )

    def spec(name: str, weight: float) -> dict[str, object]:
        return {
            "name": name,
            "method": "delta_svd",
            "rank": 16,
            "expression": f"{weight} * big/a0 + 0.5 * big/a1",
        }

    def post(body: dict[str, object]) -> str:
        r = httpx.post(f"{url}/v1/compositions", json=body, headers=headers, timeout=300)
        assert r.status_code == 202, r.text
        return str(r.json()["id"])

    with serve(env, tmp_path / "serve.log") as (url, proc):
        assert finish(url, headers, [post(spec("big/warm", 0.9))]) == ["succeeded"]  # imports done
        peaks: list[float] = []
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.is_set():
                peaks.append(rss_mb(proc.pid))
                time.sleep(0.02)

        def measured(bodies: list[dict[str, object]]) -> float:
            """Peak RSS growth (MB) of the server while these compositions run concurrently."""
            before = rss_mb(proc.pid)
            peaks.clear()
            sampling.clear()
            sampler = threading.Thread(target=sample)
            sampler.start()
            try:
                with ThreadPoolExecutor(len(bodies)) as pool:
                    ids = list(pool.map(post, bodies))
                assert set(finish(url, headers, ids)) == {"succeeded"}
            finally:
                sampling.set()
                sampler.join()
            return max(peaks) - before

        one = measured([spec("big/one", 0.7)])
        eight = measured([spec(f"big/m{i}", round(0.1 * (i + 1), 1)) for i in range(8)])
    print(f"RSS growth: one composition {one:.0f} MB, eight concurrent {eight:.0f} MB ({WORKERS} workers)")
    # The pool holds at most WORKERS compositions; the rest wait as rows (plus allocator slack).
    assert eight <= WORKERS * max(one, 32) + 96, (one, eight)


def backdate_beat(reg: Registry, run_id: str, seconds: float) -> None:
    """The run's last beat `seconds` ago: what a stall that long leaves behind (without waiting it out)."""
    with transaction(reg.sessions) as session:
        session.get_one(m.Composition, run_id).heartbeat_at = m.utcnow() - timedelta(seconds=seconds)


@pytest.mark.postgres
def test_the_server_keeps_its_runs_through_a_database_stall_and_bounds_its_queue(
    pg_url: str, warm_home: tuple[Path, int], tmp_path: Path
) -> None:
    home, port = warm_home
    url = make_url(pg_url)
    marks = tmp_path / "marks"
    marks.mkdir()
    with FreezableProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        proxied = url.set(port=proxy.port).render_as_string(hide_password=False)
        settings = Settings(
            home=home, database_url=pg_url, artifact_store=(tmp_path / "store").as_uri(), principal="setup"
        )
        reg = Registry(settings)  # the test's own view of the catalog, not through the proxy
        reg.store.ensure_ready()
        service.add_base_model(reg, "tiny-llama", source=str(save_tiny_base(tmp_path / "base")))
        service.register_adapter(reg, make_lora(tmp_path / "a", seed=1), "t/a")
        service.register_adapter(reg, make_lora(tmp_path / "b", seed=2), "t/b")
        headers = {"Authorization": f"Bearer {create_key(reg, 'writer', 'writer')}"}
        env = clean_env(
            PEMREG_HOME=str(home),
            PEMREG_LOCAL_PREFECT_PORT=str(port),
            PEMREG_DATABASE_URL=proxied,
            PEMREG_ARTIFACT_STORE=settings.resolved_artifact_store,
            PEMREG_HEARTBEAT_SECONDS="5",
            PEMREG_RUN_STALE_AFTER_SECONDS="10",
            PEMREG_RECONCILE_INTERVAL_SECONDS="0.2",
            PEMREG_DB_CONNECT_TIMEOUT_SECONDS="1",
            PEMREG_DB_STATEMENT_TIMEOUT_SECONDS="1",
            PEMREG_DB_POOL_TIMEOUT_SECONDS="1",
            PEMREG_FAILPOINTS="before_upload",  # the run computes (holds no database work) until killed
            PEMREG_FAILPOINT_DIR=str(marks),
            PEMREG_COMPOSE_WORKERS="1",
            PEMREG_COMPOSE_QUEUE_LIMIT="1",
        )
        try:
            with serve(env, tmp_path / "serve.log") as (server, proc):
                body = {"name": "t/held", "expression": "0.5 * t/a + 0.5 * t/b"}
                r = httpx.post(f"{server}/v1/compositions", json=body, headers=headers, timeout=120)
                assert r.status_code == 202, r.text
                run_id = r.json()["id"]
                assert failpoint_pid(marks / "before_upload", proc, 120) == proc.pid  # the server runs it
                assert compositions.get(reg, run_id).status is RunStatus.RUNNING

                proxy.frozen.set()  # the stall: the server's beats and reconciles hang, then fail
                time.sleep(3.0)
                proxy.frozen.clear()
                backdate_beat(reg, run_id, 60)  # as a 60 s stall would have left it
                time.sleep(3.0)  # ~15 reconcile passes of the server, before or after its next beat
                held = compositions.get(reg, run_id)
                assert held.status is RunStatus.RUNNING, held.error
                log = (tmp_path / "serve.log").read_text()
                assert f"reconciled composition {run_id}" not in log, log

                # One worker busy, one place in the queue: the next run waits, the one after is refused.
                body = {"name": "t/queued", "expression": "0.25 * t/a + 0.75 * t/b"}
                queued = httpx.post(f"{server}/v1/compositions", json=body, headers=headers, timeout=120)
                assert queued.status_code == 202 and queued.json()["status"] == "pending", queued.text
                body = {"name": "t/refused", "expression": "0.75 * t/a + 0.25 * t/b"}
                refused = httpx.post(f"{server}/v1/compositions", json=body, headers=headers, timeout=120)
                assert refused.status_code == 503 and int(refused.headers["retry-after"]) >= 1, refused.text
                assert "queue is full" in refused.json()["detail"]
                rows = compositions.list_compositions(reg).items
                assert sorted(c.name for c in rows) == ["t/held", "t/queued"]  # no row for the refused one
                backdate_beat(reg, queued.json()["id"], 60)
                time.sleep(1.0)  # several reconcile passes
                waiting = compositions.get(reg, queued.json()["id"])
                assert waiting.status is RunStatus.PENDING and waiting.worker, waiting  # claimed, held

                os.kill(proc.pid, signal.SIGKILL)  # now the owner is gone: another process ends its runs
                proc.wait(timeout=15)
            backdate_beat(reg, run_id, 60)
            backdate_beat(reg, queued.json()["id"], 60)
            lost = {r.composition_id: r for r in runs.reconcile(reg)}
            assert set(lost) == {run_id, queued.json()["id"]}
            for record in lost.values():
                assert record.action == "failed"
                assert record.message.startswith("worker lost: no heartbeat since"), record.message
        finally:
            proxy.frozen.clear()
            truncate_all(pg_url)
