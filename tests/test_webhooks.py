"""Webhooks on both backends (SQLite + file store, PostgreSQL + S3) with a real receiver on loopback:
the outbox row of each kind of change, filters, signed deliveries, retries with the same webhook-id,
dead letters, redelivery, secret rotation, the SSRF checks at connect time and who may receive."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from registry import service
from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.errors import Conflict, InvalidInput
from registry.service import Registry
from registry.service.access.identity import Access
from registry.service.admin.keys import create_key, revoke_key
from registry.service.catalog import lifecycle
from registry.service.compositions import reads as compositions
from registry.service.compositions import runs
from registry.service.compositions.inputs import resolve_inputs
from registry.service.compositions.status import RunStatus
from registry.service.events import deliveries, outbox, webhooks
from registry.service.events.deliverer import Deliverer
from registry.service.events.hosts import AllowedHosts
from registry.service.events.sender import Sender
from registry.spec import load_spec
from registry.webhooks import signing
from registry.webhooks.views import DeliveryView
from tests.factories import make_lora
from tests.webhook_receiver import Receiver

FAST = {
    "webhook_backoff_seconds": 0.05,
    "webhook_backoff_max_seconds": 0.2,
    "webhook_poll_seconds": 0.05,
    "webhook_timeout_seconds": 2.0,
    "webhook_concurrency": 4,
}


@pytest.fixture
def hooks(reg: Registry, receiver: Receiver, tmp_path: Path) -> Registry:
    """The test's registry with webhooks allowed to the receiver, short retry clocks, two adapters."""
    settings = reg.settings.model_copy(update={"webhook_allowed_hosts": f"127.0.0.1:{receiver.port}", **FAST})
    out = Registry(settings)
    receiver.reset()
    service.add_base_model(out, "tiny-llama", source="hf-internal-testing/tiny-llama")
    service.register_adapter(out, make_lora(tmp_path / "a", seed=1), "acme/a")
    service.register_adapter(out, make_lora(tmp_path / "b", seed=2), "other/b")
    return out


@pytest.fixture
def deliverer(hooks: Registry) -> Iterator[Deliverer]:
    d = Deliverer(hooks).start()
    yield d
    d.stop()


def queued(reg: Registry, webhook_id: str) -> list[tuple[str, dict]]:
    """(type, data) of every event queued for the webhook, oldest first."""
    import json

    with reg.sessions() as session:
        rows = session.execute(
            select(m.WebhookEvent.type, m.WebhookEvent.body)
            .join(m.WebhookDelivery, m.WebhookDelivery.event_id == m.WebhookEvent.id)
            .where(m.WebhookDelivery.webhook_id == webhook_id)
            .order_by(m.WebhookEvent.created_at, m.WebhookDelivery.id)
        ).all()
    return [(kind, json.loads(body)["data"]) for kind, body in rows]


def event_count(reg: Registry) -> int:
    with reg.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(m.WebhookEvent)) or 0)


def wait_delivery(reg: Registry, hook: str, event_id: str, status: str, timeout: float = 20) -> DeliveryView:
    deadline = time.monotonic() + timeout
    while True:
        d = deliveries.get_delivery(reg, hook, event_id)
        if d.status == status or time.monotonic() > deadline:
            assert d.status == status, d
            return d
        time.sleep(0.05)


def test_every_kind_of_change_queues_its_event_in_its_transaction(
    hooks: Registry,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    hook = webhooks.create_webhook(hooks, url=receiver.url)
    v2, _ = service.register_adapter(hooks, make_lora(tmp_path / "a2", seed=3), "acme/a")
    service.set_alias(hooks, "acme/a@1", "prod")
    service.set_alias(hooks, "acme/a@2", "prod")
    service.set_alias(hooks, "acme/a@2", "prod")  # no move: no event (as no audit event)
    lifecycle.set_status(hooks, "acme/a@1", "deprecate")
    lifecycle.delete_alias(hooks, "acme/a", "prod")
    service.set_alias(hooks, "acme/a@1", "old")
    lifecycle.delete_version(hooks, "acme/a@1")  # its alias goes first, then the version
    spec = load_spec("name: acme/ab\nexpression: 'acme/a@2 + other/b'\n")
    run = runs.create(hooks, spec, resolve_inputs(hooks, spec), "cli")
    runs.mark_running(hooks, run.id, None)
    runs.transition(hooks, run.id, RunStatus.SUCCEEDED, output_version_id=_version_id(hooks, "acme/a", 2))
    runs.record_cache_hit(hooks, spec, resolve_inputs(hooks, spec), "api", compositions.get(hooks, run.id))
    failed = runs.create(hooks, spec, resolve_inputs(hooks, spec), "cli")
    runs.fail(hooks, failed.id, "boom")
    rejected = runs.create(hooks, spec, resolve_inputs(hooks, spec), "cli")
    runs.mark_running(hooks, rejected.id, None)
    runs.reject(hooks, rejected.id, {"acc": 0.1}, ["acc < 0.5"])

    got = queued(hooks, hook.id)
    assert [kind for kind, _ in got] == [
        "version.created",
        "alias.moved",
        "alias.moved",
        "version.status_changed",
        "alias.deleted",
        "alias.moved",
        "alias.deleted",
        "version.deleted",
        "composition.succeeded",
        "composition.succeeded",
        "composition.failed",
        "composition.rejected",
    ]
    data = [d for _, d in got]
    assert data[0] == {
        "name": "acme/a",
        "namespace": "acme",
        "version": 2,
        "sha256": v2.sha256,
        "status": "active",
        "actor": "tester",
    }
    assert data[1]["alias"] == "prod" and data[1]["version"] == 1 and "previous_version" not in data[1]
    assert data[2]["version"] == 2 and data[2]["previous_version"] == 1
    assert data[3]["status"] == "deprecated" and data[3]["previous_status"] == "active"
    assert data[4] == {
        "name": "acme/a",
        "namespace": "acme",
        "alias": "prod",
        "previous_version": 2,
        "actor": "tester",
    }
    assert data[6]["alias"] == "old" and data[7]["status"] == "deleted" and data[7]["version"] == 1
    assert data[8]["composition_id"] == run.id and data[8]["version"] == 2 and data[8]["cache_hit"] is False
    assert data[9]["cache_hit"] is True and data[9]["trigger"] == "api" and data[9]["sha256"] == v2.sha256
    assert data[10]["error"] == "boom" and data[10]["status"] == "failed"
    assert data[11]["status"] == "rejected" and data[11]["namespace"] == "acme"

    # A change that fails writes no event, and nor does an outbox row in a transaction rolled back.
    before = event_count(hooks)
    with transaction(hooks.sessions) as session:
        session.add(
            m.LineageEdge(
                parent_version_id=_version_id(hooks, "acme/a", 2),
                child_version_id=_version_id(hooks, "other/b", 1),
                operator="linear",
                weight=1.0,
            )
        )
    with pytest.raises(Conflict, match="descend"):
        lifecycle.delete_version(hooks, "acme/a@2")
    with pytest.raises(RuntimeError), transaction(hooks.sessions) as session:
        row = session.get_one(m.AdapterVersion, _version_id(hooks, "acme/a", 2))
        outbox.version_status_changed(session, row, "active", "tester")
        raise RuntimeError("rolled back")
    assert event_count(hooks) == before


def _version_id(reg: Registry, name: str, version: int) -> int:
    ns, short = name.split("/")
    with reg.sessions() as session:
        return int(
            session.scalar(
                select(m.AdapterVersion.id)
                .join(m.Adapter)
                .where(
                    m.Adapter.namespace == ns, m.Adapter.name == short, m.AdapterVersion.version == version
                )
            )
        )


def test_filters_by_type_namespace_and_alias_glob(hooks: Registry, receiver: Receiver) -> None:
    every = webhooks.create_webhook(hooks, url=receiver.url)
    acme = webhooks.create_webhook(hooks, url=receiver.url, namespace="acme")
    prod = webhooks.create_webhook(hooks, url=receiver.url, events=["alias.moved"], alias_pattern="prod*")
    paused = webhooks.create_webhook(hooks, url=receiver.url)
    webhooks.update_webhook(hooks, paused.id, active=False)
    for ref, alias in (("acme/a@1", "prod"), ("acme/a@1", "staging"), ("other/b@1", "prod-eu")):
        service.set_alias(hooks, ref, alias)
    lifecycle.set_status(hooks, "other/b@1", "archive")

    def moves(hook: str) -> list[str]:
        return [f"{d['name']}@{d.get('alias', '')}" for _, d in queued(hooks, hook)]

    assert moves(every.id) == ["acme/a@prod", "acme/a@staging", "other/b@prod-eu", "other/b@"]
    assert moves(acme.id) == ["acme/a@prod", "acme/a@staging"]
    assert moves(prod.id) == ["acme/a@prod", "other/b@prod-eu"]
    assert moves(paused.id) == []
    with pytest.raises(InvalidInput, match="events"):
        webhooks.create_webhook(hooks, url=receiver.url, events=["version.made"])
    with pytest.raises(InvalidInput, match="alias_pattern"):
        webhooks.create_webhook(hooks, url=receiver.url, alias_pattern="prod/*")
    with pytest.raises(InvalidInput, match="not an allowed webhook host"):
        webhooks.create_webhook(hooks, url="http://127.0.0.1:1/hook")


def test_signed_delivery_retried_with_the_same_id_until_2xx(
    hooks: Registry,
    receiver: Receiver,
    deliverer: Deliverer,
) -> None:
    hook = webhooks.create_webhook(hooks, url=receiver.url, events=["alias.moved"])
    seen: dict[str, int] = {}

    def fail_twice(r: object) -> tuple[int, float]:
        msg = r.headers["webhook-id"]  # type: ignore[attr-defined]
        seen[msg] = seen.get(msg, 0) + 1
        return (500 if seen[msg] <= 2 else 200), 0.0

    receiver.reset(fail_twice)
    service.set_alias(hooks, "acme/a@1", "prod")
    got = receiver.wait_for(3)
    assert len(got) == 3 and len({r.id for r in got}) == 1
    assert [r.body for r in got] == [got[0].body] * 3  # the same body, signed afresh each time
    for r in got:
        assert signing.verify(hook.secret, r.headers, r.body) == r.id
        assert r.headers["content-type"] == "application/json"
    assert got[0].json()["type"] == "alias.moved" and got[0].json()["data"]["alias"] == "prod"
    d = wait_delivery(hooks, hook.id, got[0].id, "delivered")
    assert d.attempts == 3 and [a.status_code for a in d.history] == [500, 500, 200]
    assert d.history[0].error == "HTTP 500" and d.history[0].response == '{"error": "scripted failure"}'
    assert all(a.latency_ms > 0 and a.worker == deliverer.worker for a in d.history)
    assert d.last_status_code == 200 and d.next_attempt_at is None


def test_dead_letter_then_redeliver_with_the_same_id(
    hooks: Registry,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    short = Registry(hooks.settings.model_copy(update={"webhook_retry_hours": 0.5 / 3600}))  # a 0.5 s window
    hook = webhooks.create_webhook(short, url=receiver.url, events=["version.status_changed"])
    receiver.reset(lambda _r: (503, 0.0))
    d = Deliverer(short).start()
    try:
        lifecycle.set_status(short, "acme/a@1", "deprecate")
        event_id = receiver.wait_for(1)[0].id
        dead = wait_delivery(short, hook.id, event_id, "dead")
        assert dead.attempts >= 1 and dead.last_status_code == 503
        assert [x.event_id for x in deliveries.list_deliveries(short, hook.id, status="dead")] == [event_id]
        assert deliveries.list_deliveries(short, hook.id, status="pending") == []
        receiver.reset()
        again = deliveries.redeliver(short, hook.id, event_id)
        assert again.status == "pending"
        done = wait_delivery(short, hook.id, event_id, "delivered")
        assert done.attempts == dead.attempts + 1
        assert [r.id for r in receiver.received] == [event_id]
        with pytest.raises(InvalidInput, match="status"):
            deliveries.list_deliveries(short, hook.id, status="lost")
    finally:
        d.stop()


def test_rotation_signs_with_both_secrets_during_the_grace_period(
    hooks: Registry,
    receiver: Receiver,
    deliverer: Deliverer,
) -> None:
    hook = webhooks.create_webhook(hooks, url=receiver.url)
    rotated = webhooks.rotate_secret(hooks, hook.id)
    assert rotated.secret != hook.secret and rotated.previous_secret_until is not None
    sent = webhooks.ping(hooks, hook.id)
    r = receiver.wait_for(1)[0]
    assert r.id == sent.event_id and r.json()["type"] == "webhook.ping"
    assert len(r.headers["webhook-signature"].split()) == 2
    for secret in (hook.secret, rotated.secret):
        assert signing.verify(secret, r.headers, r.body) == sent.event_id
    with transaction(hooks.sessions) as session:  # the grace period over: the new secret alone
        session.get_one(m.Webhook, hook.id).previous_secret_until = m.utcnow()
    receiver.reset()
    webhooks.ping(hooks, hook.id)
    r = receiver.wait_for(1)[0]
    assert len(r.headers["webhook-signature"].split()) == 1
    signing.verify(rotated.secret, r.headers, r.body)
    with pytest.raises(signing.InvalidSignature):
        signing.verify(hook.secret, r.headers, r.body)


def test_timeouts_redirects_and_addresses_are_attempt_failures(receiver: Receiver) -> None:
    body, headers = b"{}", signing.headers([signing.new_secret()], "msg_t", int(time.time()), b"{}")
    receiver.reset(lambda _r: (200, 1.0))
    sender = Sender(AllowedHosts.parse(f"127.0.0.1:{receiver.port}"), timeout=0.3, max_connections=2)
    started = time.monotonic()
    result = sender.post(receiver.url, headers, body)
    assert result.status_code is None and "timed out" in (result.error or "")
    assert time.monotonic() - started < 0.9  # the deadline, not the receiver, ended it
    receiver.reset(lambda _r: (302, 0.0))
    result = sender.post(receiver.url, headers, body)
    assert result.status_code == 302 and not result.ok and "not followed" in (result.error or "")
    assert "elsewhere" in (result.error or "")
    sender.close()

    # A listed name that resolves to a loopback address not itself listed: never connected to.
    receiver.reset()
    named = Sender(AllowedHosts.parse(f"localhost:{receiver.port}"), timeout=2, max_connections=1)
    result = named.post(f"http://localhost:{receiver.port}/hook", headers, body)
    assert result.status_code is None and (result.error or "").startswith("blocked: localhost resolves to")
    assert "list 127.0.0.1" in (result.error or "") or "list ::1" in (result.error or "")
    result = named.post(receiver.url, headers, body)  # 127.0.0.1 itself is not listed there
    assert result.status_code is None and "blocked" in (result.error or "")
    named.close()
    assert receiver.received == []


def test_a_revoked_owner_receives_nothing_more(hooks: Registry, receiver: Receiver) -> None:
    create_key(hooks, "hook-admin", "admin")
    as_key = hooks.acting_as(Access("key:hook-admin", "admin"))
    hook = webhooks.create_webhook(as_key, url=receiver.url)
    assert hook.owner == "key:hook-admin"
    lifecycle.set_status(hooks, "acme/a@1", "deprecate")
    assert len(queued(hooks, hook.id)) == 1
    revoke_key(hooks, "hook-admin")
    lifecycle.set_status(hooks, "acme/a@1", "restore")
    assert len(queued(hooks, hook.id)) == 1  # not queued for a revoked owner
    claims = deliveries.claim(hooks, limit=10, worker="test")
    assert claims == []  # the one queued before the revocation is not sent either
    dead = deliveries.list_deliveries(hooks, hook.id, status="dead")
    assert len(dead) == 1 and dead[0].last_error == (
        "the webhook's owner key:hook-admin may not receive events: "
        "key:hook-admin was revoked; what it stored no longer runs"
    )
    with pytest.raises(Conflict, match="key:hook-admin was revoked"):
        webhooks.ping(hooks, hook.id)
