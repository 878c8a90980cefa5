"""Webhooks and metrics through real `pemreg serve` processes on PostgreSQL + SeaweedFS: two servers
share the catalog (one single-process, one with `--workers 2`), so two processes deliver side by side.

- the REST surface (create/list/show/patch/ping/deliveries/redeliver/rotate/delete, roles, 422s);
- two delivering processes never send one event twice, nor one attempt at once;
- /metrics under --workers 2 parses with prometheus_client's parser and counts every request, by route
  template;
- `pemreg adapters pull` through the API, and `pemreg webhooks listen --exec` following `@prod`.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from registry import service
from registry.catalog import models as m
from registry.client import Client
from registry.service.catalog import lifecycle
from registry.webhooks import signing
from tests.factories import make_lora
from tests.live_server import Server, _wait_ready, free_port, run_server, stop
from tests.pg_service import truncate_all
from tests.s3_service import S3Service
from tests.webhook_receiver import Receiver

BASE_SOURCE = "hf-internal-testing/tiny-llama"


@dataclass
class Stack:
    a: Server  # pemreg serve (one process)
    b_url: str  # pemreg serve --workers 2, same catalog and store
    listen_port: int
    adapters: Path


@pytest.fixture(scope="module")
def stack(
    pg_url: str, s3_service: S3Service, receiver: Receiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("webhooks-live")
    listen_port = free_port()
    env = {
        "PEMREG_WEBHOOK_ALLOWED_HOSTS": f"127.0.0.1:{receiver.port},127.0.0.1:{listen_port}",
        "PEMREG_WEBHOOK_BACKOFF_SECONDS": "0.2",
        "PEMREG_WEBHOOK_BACKOFF_MAX_SECONDS": "1",
        "PEMREG_WEBHOOK_POLL_SECONDS": "0.1",
        "PEMREG_WEBHOOK_TIMEOUT_SECONDS": "5",
    }
    servers = run_server(pg_url, s3_service, tmp, test_bases=False, **env)  # its own tiny-llama source
    a = next(servers)
    b_port = free_port()
    b_env = {**a.server_env, "PEMREG_HOME": str(tmp / "home-b")}
    log = tmp / "serve-b.log"
    with log.open("wb") as out:
        b = subprocess.Popen(
            [sys.executable, "-m", "api.cli.main", "serve", "--port", str(b_port), "--workers", "2"],
            env=b_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    b_url = f"http://127.0.0.1:{b_port}"
    try:
        _wait_ready(b_url, b, log)
        service.add_base_model(a.reg, "tiny-llama", source=BASE_SOURCE)
        folders = tmp / "adapters"
        for i in (1, 2):
            make_lora(folders / f"v{i}", seed=i)
        yield Stack(a=a, b_url=b_url, listen_port=listen_port, adapters=folders)
    finally:
        stop(b)
        servers.close()  # stops server A, truncates the catalog
        truncate_all(pg_url)


def _h(stack: Stack, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.a.keys[role]}"}


def _create(stack: Stack, url: str, **fields: object) -> dict:
    r = httpx.post(f"{stack.a.url}/v1/webhooks", json={"url": url, **fields}, headers=_h(stack, "admin"))
    assert r.status_code == 201, r.text
    return dict(r.json())


def _delete_all(stack: Stack) -> None:
    for hook in httpx.get(f"{stack.a.url}/v1/webhooks", headers=_h(stack, "admin")).json():
        httpx.delete(f"{stack.a.url}/v1/webhooks/{hook['id']}", headers=_h(stack, "admin"))


def test_rest_surface(stack: Stack, receiver: Receiver) -> None:
    api, admin = stack.a.url, _h(stack, "admin")
    receiver.reset()
    body = {"url": receiver.url, "events": ["alias.moved"]}
    assert httpx.post(f"{api}/v1/webhooks", json=body).status_code == 401
    assert httpx.post(f"{api}/v1/webhooks", json=body, headers=_h(stack, "writer")).status_code == 403
    # A reader maintains no namespace: it manages no webhook (and sees none).
    _create(stack, receiver.url, events=["alias.moved"], description="seen by admins only")
    assert httpx.get(f"{api}/v1/webhooks", headers=_h(stack, "reader")).json() == []
    _delete_all(stack)
    bad = httpx.post(f"{api}/v1/webhooks", json={**body, "url": "http://10.1.2.3/x"}, headers=admin)
    assert bad.status_code == 422 and bad.json()["field"] == "url" and "10.1.2.3:80" in bad.json()["detail"]
    bad = httpx.post(f"{api}/v1/webhooks", json={**body, "events": ["nope"]}, headers=admin)
    assert bad.status_code == 422 and bad.json()["field"] == "events"

    hook = _create(stack, receiver.url, events=["alias.moved"], alias_pattern="prod", description="serving")
    assert hook["secret"].startswith("whsec_") and hook["owner"] == "key:admin-key"
    listed = httpx.get(f"{api}/v1/webhooks", headers=admin).json()
    assert [h["id"] for h in listed] == [hook["id"]] and "secret" not in listed[0]
    patched = httpx.patch(
        f"{api}/v1/webhooks/{hook['id']}", json={"alias_pattern": None, "description": "all"}, headers=admin
    ).json()
    assert (
        patched["alias_pattern"] is None
        and patched["description"] == "all"
        and patched["events"] == ["alias.moved"]
    )

    ping = httpx.post(f"{api}/v1/webhooks/{hook['id']}:ping", headers=admin)
    assert ping.status_code == 202
    event_id = ping.json()["event_id"]
    got = receiver.wait_for(1)
    assert [r.id for r in got] == [event_id]
    assert signing.verify(hook["secret"], got[0].headers, got[0].body) == event_id
    assert got[0].json()["data"] == {"webhook_id": hook["id"], "actor": "key:admin-key"}
    delivery = _wait_status(stack, hook["id"], event_id, "delivered")
    assert delivery["history"][0]["status_code"] == 200 and delivery["history"][0]["latency_ms"] > 0

    again = httpx.post(f"{api}/v1/webhooks/{hook['id']}/deliveries/{event_id}:redeliver", headers=admin)
    assert again.status_code == 202 and again.json()["status"] == "pending"
    assert [r.id for r in receiver.wait_for(2)] == [event_id, event_id]
    assert _wait_status(stack, hook["id"], event_id, "delivered")["attempts"] == 2

    rotated = httpx.post(f"{api}/v1/webhooks/{hook['id']}:rotate-secret", headers=admin).json()
    assert rotated["secret"] != hook["secret"] and rotated["previous_secret_until"]
    missing = httpx.post(f"{api}/v1/webhooks/{hook['id']}/deliveries/msg_nope:redeliver", headers=admin)
    assert missing.status_code == 404
    assert httpx.delete(f"{api}/v1/webhooks/{hook['id']}", headers=admin).status_code == 204
    assert httpx.get(f"{api}/v1/webhooks/{hook['id']}", headers=admin).status_code == 404
    assert httpx.post(f"{api}/v1/webhooks/{hook['id']}:ping", headers=admin).status_code == 404


def _wait_status(stack: Stack, hook: str, event_id: str, status: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        d = httpx.get(
            f"{stack.a.url}/v1/webhooks/{hook}/deliveries/{event_id}", headers=_h(stack, "admin")
        ).json()
        if d["status"] == status or time.monotonic() > deadline:
            assert d["status"] == status, d
            return dict(d)
        time.sleep(0.1)


def test_two_delivering_processes_never_send_one_event_twice(stack: Stack, receiver: Receiver) -> None:
    reg = stack.a.reg
    _delete_all(stack)
    service.register_adapter(reg, stack.adapters / "v1", "acme/toggle")
    hook = _create(stack, receiver.url, events=["version.status_changed"])
    receiver.reset(lambda _r: (200, 0.03))  # each answer takes a while: claims overlap in time
    count = 120
    for i in range(count):
        lifecycle.set_status(reg, "acme/toggle@1", "deprecate" if i % 2 == 0 else "restore")
    got = receiver.wait_for(count, timeout=60)
    per_id = collections.Counter(r.id for r in got)
    assert len(per_id) == count and set(per_id.values()) == {1}, per_id.most_common(3)
    assert receiver.overlaps == []
    for r in got:
        signing.verify(hook["secret"], r.headers, r.body)
    # A deliverer records its attempt after the receiver's answer: the last one may land a moment
    # after the receiver has counted it (CI saw 119 of 120), so wait for the records, bounded.
    deadline = time.monotonic() + 15
    while True:
        with reg.sessions() as session:
            workers = collections.Counter(
                session.scalars(
                    select(m.WebhookAttempt.worker)
                    .join(m.WebhookDelivery, m.WebhookDelivery.id == m.WebhookAttempt.delivery_id)
                    .where(m.WebhookDelivery.webhook_id == hook["id"])
                )
            )
        if sum(workers.values()) >= count or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(workers) == 2 and sum(workers.values()) == count, workers  # both processes delivered
    _delete_all(stack)


def _scrape(url: str, headers: dict[str, str]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = httpx.get(f"{url}/metrics", headers=headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def _total(samples: dict, name: str, **labels: str) -> float:
    return sum(v for (n, lab), v in samples.items() if n == name and labels.items() <= dict(lab).items())


def test_metrics_under_two_workers_count_every_request(stack: Stack) -> None:
    b = stack.b_url
    assert httpx.get(f"{b}/metrics").status_code == 401
    assert httpx.get(f"{b}/metrics", headers=_h(stack, "reader")).status_code == 403
    admin = _h(stack, "admin")
    before = _scrape(b, admin)
    n = 40
    for _ in range(n):  # a new connection each: the two worker processes share them
        assert httpx.get(f"{b}/healthz").status_code == 200
    for _ in range(3):
        assert httpx.get(f"{b}/v1/adapters/acme/no-such", headers=admin).status_code == 404
    after = _scrape(b, admin)
    key = {"method": "GET", "route": "/healthz", "status": "200"}
    assert (
        _total(after, "pemreg_http_requests_total", **key)
        - _total(before, "pemreg_http_requests_total", **key)
        == n
    )
    assert _total(after, "pemreg_http_request_duration_seconds_count", method="GET", route="/healthz") >= n
    missing = {"method": "GET", "route": "/v1/adapters/{ns}/{name}", "status": "404"}
    assert (
        _total(after, "pemreg_http_requests_total", **missing)
        - _total(before, "pemreg_http_requests_total", **missing)
        == 3
    )
    assert not any("no-such" in str(labels) for _, labels in after)  # templates, never raw paths
    names = {name for name, _ in after}
    for family in (
        "pemreg_http_requests_total",
        "pemreg_http_request_duration_seconds_bucket",
        "pemreg_compositions_total",
        "pemreg_runs_reconciled_total",
        "pemreg_webhook_deliveries_total",
        "pemreg_webhook_outbox_pending",
        "pemreg_gc_objects_deleted_total",
    ):
        assert family in names, family
    # Every scrape answers for every process: the supervisor's deliveries are there too.
    assert _total(after, "pemreg_webhook_deliveries_total", outcome="delivered") > 0


def test_pull_through_the_api_lays_out_what_vllm_and_lorax_read(stack: Stack, tmp_path: Path) -> None:
    reg = stack.a.reg
    v1, _ = service.register_adapter(reg, stack.adapters / "v1", "acme/pulled")
    service.set_alias(reg, "acme/pulled@1", "prod")
    refs = httpx.get(
        f"{stack.a.url}/v1/adapters/acme/pulled/versions/prod/serving",
        params={"dir": "/srv/loras"},
        headers=_h(stack, "reader"),
    ).json()
    assert (
        refs["base_model_source"] == BASE_SOURCE and refs["pull"]["folder"] == f"acme/pulled@{v1.sha256[:8]}"
    )
    assert refs["vllm"]["lora_path"] == f"/srv/loras/acme/pulled@{v1.sha256[:8]}"
    assert refs["vllm"]["resolver_env"]["VLLM_LORA_RESOLVER_CACHE_DIR"] == "/srv/loras"
    assert refs["lorax"]["adapter_source"] == "s3" and refs["lorax"]["adapter_id"] == v1.artifact_uri
    server_home = stack.a.server_env["PEMREG_HOME"]
    assert server_home not in json.dumps(refs)
    assert {f["file"] for f in refs["files"]} == set(v1.files) and refs["expires_in"] == 3600
    for f in refs["files"]:  # presigned: fetched with no API key, bytes as recorded
        assert hashlib.sha256(httpx.get(f["url"]).content).hexdigest() == f["sha256"]

    with Client(stack.a.url, stack.a.keys["reader"]) as client:
        folder = client.pull("acme/pulled@prod", tmp_path / "loras")
        again = client.pull("acme/pulled@prod", tmp_path / "loras")
    assert folder == again == tmp_path / "loras" / "acme" / f"pulled@{v1.sha256[:8]}"
    link = tmp_path / "loras" / "acme" / "pulled@prod"
    assert link.is_symlink() and link.resolve() == folder.resolve()
    config = json.loads((folder / "adapter_config.json").read_text())
    original = json.loads((stack.adapters / "v1" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == BASE_SOURCE and config["peft_type"] == "LORA"
    assert {k: v for k, v in config.items() if k != "base_model_name_or_path"} == {
        k: v for k, v in original.items() if k != "base_model_name_or_path"
    }
    weights = (folder / "adapter_model.safetensors").read_bytes()
    assert weights == (stack.adapters / "v1" / "adapter_model.safetensors").read_bytes()
    assert (
        json.loads((folder / ".pemreg.json").read_text())["original_base_model_name_or_path"]
        == (original["base_model_name_or_path"])
    )


def test_listen_follows_an_alias_and_runs_the_command(stack: Stack, tmp_path: Path) -> None:
    reg = stack.a.reg
    v1, _ = service.register_adapter(reg, stack.adapters / "v1", "acme/served")
    v2, _ = service.register_adapter(reg, stack.adapters / "v2", "acme/served")
    hook = _create(
        stack,
        f"http://127.0.0.1:{stack.listen_port}/",
        events=["alias.moved", "alias.deleted"],
        alias_pattern="prod",
    )
    out = tmp_path / "hook-runs.jsonl"
    script = tmp_path / "reload.py"
    script.write_text(
        "import json, os, sys\n"
        f"with open({str(out)!r}, 'a') as f:\n"
        "    f.write(json.dumps({k: v for k, v in os.environ.items() if k.startswith('PEMREG_')}) + '\\n')\n"
    )
    loras = tmp_path / "loras"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PEMREG_", "AWS_"))}
    env |= {
        "PEMREG_URL": stack.a.url,
        "PEMREG_API_KEY": stack.a.keys["reader"],
        "PEMREG_WEBHOOK_SECRET": hook["secret"],
        "PEMREG_HOME": str(tmp_path / "listener-home"),
    }
    log = tmp_path / "listen.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "api.cli.main",
                "webhooks",
                "listen",
                "--dir",
                str(loras),
                "--port",
                str(stack.listen_port),
                "--alias",
                "prod",
                "--exec",
                f"{sys.executable} {script}",
            ],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_listening(proc, log)
        service.set_alias(reg, "acme/served@1", "prod")
        runs = _wait_lines(out, 1, proc, log)
        link = loras / "acme" / "served@prod"
        assert link.resolve() == (loras / "acme" / f"served@{v1.sha256[:8]}").resolve()
        assert runs[0]["PEMREG_VERSION"] == "1" and runs[0]["PEMREG_SHA256"] == v1.sha256
        assert runs[0]["PEMREG_LORA_NAME"] == "acme/served@prod" and runs[0]["PEMREG_ADAPTER_PATH"] == str(
            link
        )
        assert runs[0]["PEMREG_BASE_MODEL"] == BASE_SOURCE
        assert (
            json.loads((link / "adapter_config.json").read_text())["base_model_name_or_path"] == BASE_SOURCE
        )

        service.set_alias(reg, "acme/served@2", "staging")  # not followed: filtered by the webhook
        service.set_alias(reg, "acme/served@2", "prod")
        runs = _wait_lines(out, 2, proc, log)
        assert runs[1]["PEMREG_VERSION"] == "2" and runs[1]["PEMREG_EVENT_TYPE"] == "alias.moved"
        assert link.resolve().name == f"served@{v2.sha256[:8]}"
        weights = (link / "adapter_model.safetensors").read_bytes()
        assert hashlib.sha256(weights).hexdigest() == v2.files["adapter_model.safetensors"]["sha256"]

        lifecycle.delete_alias(reg, "acme/served", "prod")
        runs = _wait_lines(out, 3, proc, log)
        assert runs[2]["PEMREG_EVENT_TYPE"] == "alias.deleted" and not link.exists()
        assert (loras / "acme" / f"served@{v2.sha256[:8]}").is_dir()  # the version's folder stays
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        _delete_all(stack)


def _wait_listening(proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while "listening on" not in log.read_text():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


def _wait_lines(
    path: Path, count: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60
) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count:
            return [json.loads(line) for line in lines]
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


def test_client_webhook_calls(stack: Stack, receiver: Receiver) -> None:
    """registry.client's webhook calls (what remote-mode `pemreg webhooks` uses) against server A."""
    from registry.client.errors import InvalidInput, NotFound

    receiver.reset()
    with Client(stack.a.url, stack.a.keys["admin"]) as client:
        created = client.create_webhook(receiver.url, events=["alias.moved"], description="client")
        assert created.secret.startswith("whsec_")
        assert [h.id for h in client.list_webhooks()] == [created.id]
        assert client.update_webhook(created.id, active=False).active is False
        client.update_webhook(created.id, active=True)
        sent = client.ping_webhook(created.id)
        (got,) = receiver.wait_for(1)
        assert got.id == sent.event_id and signing.verify(created.secret, got.headers, got.body)
        deadline = time.monotonic() + 20
        while (d := client.webhook_delivery(created.id, sent.event_id)).status != "delivered":
            assert time.monotonic() < deadline, d
            time.sleep(0.1)
        assert [x.event_id for x in client.webhook_deliveries(created.id, status="delivered")] == [
            sent.event_id
        ]
        assert client.redeliver(created.id, sent.event_id).status == "pending"
        assert client.rotate_webhook_secret(created.id).secret != created.secret
        with pytest.raises(InvalidInput):
            client.create_webhook("http://192.168.0.1/x")
        client.delete_webhook(created.id)
        with pytest.raises(NotFound):
            client.get_webhook(created.id)
