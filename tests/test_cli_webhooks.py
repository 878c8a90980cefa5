"""`pemreg webhooks ...` as a user runs it, locally (SQLite + file store): create prints the secret
alone on the last line, list/show/set/deliveries/ping/redeliver/rotate-secret/delete, and bad input as
one `error:` line with exit 1. A deliverer thread in the test process stands in for `pemreg serve`."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from registry.catalog.migrate import upgrade
from registry.service import Registry
from registry.service.events.deliverer import Deliverer
from registry.settings import Settings
from registry.webhooks import signing
from tests import cli_inproc
from tests.webhook_receiver import Receiver


def test_webhooks_commands(tmp_path: Path, receiver: Receiver) -> None:
    settings = Settings(
        home=tmp_path / "home",
        database_url=f"sqlite:///{tmp_path / 'reg.db'}",
        artifact_store=(tmp_path / "artifacts").as_uri(),
        webhook_allowed_hosts=f"127.0.0.1:{receiver.port}",
        webhook_poll_seconds=0.05,
    )
    upgrade(settings.resolved_database_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PEMREG_", "AWS_"))}
    env |= {
        "PEMREG_HOME": str(settings.home),
        "PEMREG_DATABASE_URL": settings.resolved_database_url,
        "PEMREG_ARTIFACT_STORE": settings.resolved_artifact_store,
        "PEMREG_WEBHOOK_ALLOWED_HOSTS": settings.webhook_allowed_hosts,
        "COLUMNS": "200",
    }

    def pemreg(*args: str) -> subprocess.CompletedProcess[str]:
        return cli_inproc.pemreg(env, "webhooks", *args)  # in this process

    receiver.reset()
    created = pemreg("create", receiver.url, "--event", "alias.moved", "--alias-pattern", "prod")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("whsec_") and "store the signing secret now" in created.stderr
    listed = json.loads(pemreg("list", "--json").stdout)
    assert [h["url"] for h in listed] == [receiver.url] and "secret" not in listed[0]
    hook = listed[0]["id"]
    assert "alias prod" in pemreg("show", hook).stdout

    deliverer = Deliverer(Registry(settings)).start()
    try:
        pinged = pemreg("ping", hook)
        assert pinged.returncode == 0 and "HTTP 200" in pinged.stdout, pinged.stderr
        (got,) = receiver.wait_for(1)
        signing.verify(secret, got.headers, got.body)
        rows = json.loads(pemreg("deliveries", hook, "--json").stdout)
        assert [r["event_id"] for r in rows] == [got.id] and rows[0]["status"] == "delivered"
        again = pemreg("redeliver", hook, got.id)
        assert again.returncode == 0 and "queued again" in again.stdout
        assert [r.id for r in receiver.wait_for(2)] == [got.id, got.id]
    finally:
        deliverer.stop()

    rotated = pemreg("rotate-secret", hook)
    assert rotated.returncode == 0 and rotated.stdout.strip().splitlines()[-1] != secret
    changed = pemreg("set", hook, "--alias-pattern", "", "--inactive")
    assert changed.returncode == 0 and "inactive" in changed.stdout and "alias prod" not in changed.stdout
    for bad, words in (
        (("create", "http://10.0.0.1/x"), "not an allowed webhook host"),
        (("show", "no-such-id"), "not found"),
    ):
        done = pemreg(*bad)
        assert done.returncode == 1 and done.stderr.startswith("error: ") and words in done.stderr, (
            done.stderr
        )
        assert len(done.stderr.strip().splitlines()) == 1
    assert pemreg("delete", hook).returncode == 0
