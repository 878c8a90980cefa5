"""A `pemreg serve` SIGKILLed after the change committed and before its webhook went out: the event is
in the outbox, and the next server delivers it (same webhook-id) once the dead one's claim lapses.
The embedded default (SQLite + file store), whose one deliverer holds the database's lock file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from registry import service
from registry.catalog.migrate import upgrade
from registry.service import Registry
from registry.service.admin.keys import create_key
from registry.service.events import deliveries
from registry.settings import Settings
from registry.webhooks import signing
from tests.factories import make_lora
from tests.live_server import _wait_ready, clean_env, free_port
from tests.webhook_receiver import Receiver

TIMEOUT = 1.0  # webhook timeout: a claim's lease is 2 * 1 + 5 = 7 s


def _serve(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "api.cli.main", "serve", "--port", str(port), "--log-level", "warning"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _wait_ready(f"http://127.0.0.1:{port}", proc, log)
    return proc


def test_sigkill_after_commit_before_delivery_delivers_after_restart(
    tmp_path: Path, receiver: Receiver
) -> None:
    settings = Settings(
        home=tmp_path / "home",
        database_url=f"sqlite:///{tmp_path / 'reg.db'}",
        artifact_store=(tmp_path / "artifacts").as_uri(),
        principal="setup",
    )
    upgrade(settings.resolved_database_url)
    reg = Registry(settings)
    reg.store.ensure_ready()
    service.add_base_model(reg, "tiny-llama", source="hf-internal-testing/tiny-llama")
    service.register_adapter(reg, make_lora(tmp_path / "a", seed=1), "acme/a")
    admin = {"Authorization": f"Bearer {create_key(reg, 'admin-key', 'admin')}"}
    env = clean_env(
        PEMREG_HOME=str(settings.home),
        PEMREG_DATABASE_URL=settings.resolved_database_url,
        PEMREG_ARTIFACT_STORE=settings.resolved_artifact_store,
        PEMREG_WEBHOOK_ALLOWED_HOSTS=f"127.0.0.1:{receiver.port}",
        PEMREG_WEBHOOK_TIMEOUT_SECONDS=str(TIMEOUT),
        PEMREG_WEBHOOK_POLL_SECONDS="0.1",
    )
    receiver.reset()
    port, log = free_port(), tmp_path / "serve.log"
    url = f"http://127.0.0.1:{port}"
    doomed = _serve(
        {**env, "PEMREG_FAILPOINTS": "webhook_before_send", "PEMREG_FAILPOINT_DIR": str(tmp_path)}, port, log
    )
    try:
        r = httpx.post(f"{url}/v1/webhooks", json={"url": receiver.url}, headers=admin)
        assert r.status_code == 201, r.text
        hook = r.json()
        r = httpx.post(f"{url}/v1/adapters/acme/a/versions/1:deprecate", headers=admin)
        assert r.status_code == 200  # committed: the change and its outbox row
        marker = tmp_path / "webhook_before_send"
        deadline = time.monotonic() + 30
        while not marker.exists():  # the deliverer claimed it and stops right before sending
            assert time.monotonic() < deadline and doomed.poll() is None, log.read_text()[-2000:]
            time.sleep(0.05)
    finally:
        os.killpg(doomed.pid, signal.SIGKILL)
        doomed.wait(timeout=30)
    assert receiver.received == []
    (pending,) = deliveries.list_deliveries(reg, hook["id"])
    assert pending.status == "pending" and pending.attempts == 1  # claimed, never recorded

    restarted = _serve(env, port, log)
    try:
        got = receiver.wait_for(1, timeout=30)
        assert [r.id for r in got] == [pending.event_id]
        assert got[0].json()["type"] == "version.status_changed"
        assert signing.verify(hook["secret"], got[0].headers, got[0].body) == pending.event_id
        deadline = time.monotonic() + 10
        while (d := deliveries.get_delivery(reg, hook["id"], pending.event_id)).status != "delivered":
            assert time.monotonic() < deadline, d
            time.sleep(0.05)
        assert d.attempts == 2 and [a.status_code for a in d.history] == [200]
    finally:
        restarted.terminate()
        restarted.wait(timeout=20)
