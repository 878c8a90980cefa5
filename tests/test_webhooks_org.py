"""Webhooks under the organization model, on both backends with a real receiver on loopback: who
receives a private namespace's events (the webhook owner's read rights now, by the one policy), and who
may create and manage which webhooks (a namespace's maintainers, admins).

`pub` is internal, `sec` private. Keys (all global readers): `mp` maintains pub only, `ms` maintains
sec, `w` writes in pub; the operator (the test's registry) is an admin.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from registry import service
from registry.catalog import models as m
from registry.errors import Conflict, NotFound
from registry.service import Registry
from registry.service.access.identity import Access
from registry.service.access.namespaces import create_namespace, revoke_grant, set_grant
from registry.service.access.policy import Refused, RefusedUnseen
from registry.service.access.principals import remember
from registry.service.admin.keys import create_key, revoke_key
from registry.service.catalog.aliases import set_alias
from registry.service.events import deliveries, webhooks
from registry.service.events.deliverer import Deliverer
from registry.webhooks import signing
from tests.factories import make_lora
from tests.test_webhooks import FAST, queued, wait_delivery
from tests.webhook_receiver import Receiver

KEYS = {"mp": "reader", "ms": "reader", "w": "reader", "r": "reader"}


@dataclass
class Org:
    reg: Registry  # the operator: an admin

    def key(self, name: str) -> Registry:
        return self.reg.acting_as(Access(f"key:{name}", KEYS[name]))


@pytest.fixture
def org(reg: Registry, receiver: Receiver, tmp_path: Path) -> Org:
    settings = reg.settings.model_copy(update={"webhook_allowed_hosts": f"127.0.0.1:{receiver.port}", **FAST})
    out = Registry(settings)
    receiver.reset()
    service.add_base_model(out, "tiny-llama", source="hf-internal-testing/tiny-llama")
    for name, role in KEYS.items():
        create_key(out, name, role)
    create_namespace(out, "pub", visibility="internal")
    create_namespace(out, "sec", visibility="private")
    set_grant(out, "pub", "key:mp", "maintainer")
    set_grant(out, "pub", "key:w", "writer")
    set_grant(out, "sec", "key:ms", "maintainer")
    service.register_adapter(out, make_lora(tmp_path / "p", seed=1), "pub/a")
    service.register_adapter(out, make_lora(tmp_path / "s", seed=2), "sec/a")
    return Org(out)


@pytest.fixture
def deliverer(org: Org) -> Iterator[Deliverer]:
    d = Deliverer(org.reg).start()
    yield d
    d.stop()


def _paths(receiver: Receiver) -> list[str]:
    with receiver.lock:
        return [r.path for r in receiver.received]


def test_a_private_namespace_reaches_only_owners_who_may_read_it(
    org: Org, receiver: Receiver, deliverer: Deliverer
) -> None:
    grantee = webhooks.create_webhook(org.key("ms"), url=receiver.url + "/grantee", namespace="sec")
    # A webhook owned by a key that reads pub but has no grant in sec: made in pub by its maintainer,
    # then moved to sec by an admin (an edit keeps the owner).
    outsider = webhooks.create_webhook(org.key("mp"), url=receiver.url + "/outsider", namespace="pub")
    moved = webhooks.update_webhook(org.reg, outsider.id, namespace="sec")
    assert (moved.owner, grantee.owner) == ("key:mp", "key:ms")
    # And one owned by a reader key with no grant anywhere, registry-wide (an admin made it for it).
    reader_wide = webhooks.create_webhook(org.key("mp"), url=receiver.url + "/wide", namespace="pub")
    webhooks.update_webhook(org.reg, reader_wide.id, namespace=None)

    set_alias(org.reg, "sec/a@1", "prod")
    (got,) = receiver.wait_for(1)
    assert got.path == "/hook/grantee" and got.json()["data"]["name"] == "sec/a"
    signing.verify(grantee.secret, got.headers, got.body)
    # Nothing was queued for the others (decided in the transaction of the alias move), so nothing can
    # ever be sent to them; the receiver saw only the grantee's delivery.
    assert queued(org.reg, outsider.id) == [] and queued(org.reg, reader_wide.id) == []
    assert [k for k, _ in queued(org.reg, grantee.id)] == ["alias.moved"]

    # The same owners do receive what they may read: pub is internal.
    set_alias(org.reg, "pub/a@1", "prod")
    assert [d["name"] for _, d in queued(org.reg, reader_wide.id)] == ["pub/a"]
    assert receiver.wait_for(2)[-1].path == "/hook/wide"
    assert _paths(receiver).count("/hook/outsider") == 0


def test_revoking_the_grant_stops_delivery_from_the_next_event(org: Org, receiver: Receiver) -> None:
    hook = webhooks.create_webhook(org.key("ms"), url=receiver.url, namespace="sec", events=["alias.moved"])
    d = Deliverer(org.reg).start()
    try:
        set_alias(org.reg, "sec/a@1", "prod")
        assert len(receiver.wait_for(1)) == 1
    finally:
        d.stop()
    set_alias(org.reg, "sec/a@1", "staging")  # queued while the grant holds, not sent yet
    assert len(queued(org.reg, hook.id)) == 2
    revoke_grant(org.reg, "sec", "key:ms")
    set_alias(org.reg, "sec/a@1", "canary")  # after the revocation: not queued at all
    assert [d["alias"] for _, d in queued(org.reg, hook.id)] == ["prod", "staging"]
    # The one queued before is not sent either: the claim asks again and records why.
    assert deliveries.claim(org.reg, limit=10, worker="test") == []
    (dead,) = deliveries.list_deliveries(org.reg, hook.id, status="dead")
    assert dead.last_error == "the webhook's owner key:ms may not read namespace sec"
    assert [r.path for r in receiver.received] == ["/hook"]
    # A grant back: from the next event on.
    set_grant(org.reg, "sec", "key:ms", "reader")
    set_alias(org.reg, "sec/a@1", "edge")
    assert [d["alias"] for _, d in queued(org.reg, hook.id)] == ["prod", "staging", "edge"]


def test_a_revoked_key_or_a_demoted_sso_admin_receives_only_what_it_may_read(
    org: Org, receiver: Receiver
) -> None:
    sso_settings = org.reg.settings.model_copy(
        update={"oidc_issuer": "https://idp.example", "oidc_admin_groups": "ops"}
    )
    sso = Registry(sso_settings)  # its own sessions carry its settings (SSO on)
    ada = Access("user:ada", "admin", ("ops",))
    remember(sso, ada)
    wide = webhooks.create_webhook(sso.acting_as(ada), url=receiver.url + "/ada")
    ms_hook = webhooks.create_webhook(org.key("ms"), url=receiver.url + "/ms", namespace="sec")
    set_alias(sso, "sec/a@1", "prod")
    assert len(queued(sso, wide.id)) == 1 and len(queued(sso, ms_hook.id)) == 1

    remember(sso, Access("user:ada", "reader", ()))  # left the admin group at the issuer
    revoke_key(sso, "ms")
    set_alias(sso, "sec/a@1", "staging")
    set_alias(sso, "pub/a@1", "staging")
    assert [d["name"] for _, d in queued(sso, wide.id)] == ["sec/a", "pub/a"]  # pub: internal
    assert len(queued(sso, ms_hook.id)) == 1
    with pytest.raises(Conflict, match="key:ms was revoked"):
        webhooks.ping(sso, ms_hook.id)
    webhooks.ping(sso, wide.id)  # an event of no namespace: the owner still has access
    # SSO turned off: an SSO user's webhooks receive nothing, and say why.
    off = Registry(org.reg.settings)
    with pytest.raises(Conflict, match="single sign-on is not configured"):
        webhooks.ping(off, wide.id)
    set_alias(off, "pub/a@1", "canary")
    assert [d.get("name") for _, d in queued(off, wide.id)] == ["sec/a", "pub/a", None]  # the ping


def test_maintainers_manage_their_namespaces_webhooks_and_nobody_elses(org: Org, receiver: Receiver) -> None:
    mp, ms, w, r = (org.key(k) for k in ("mp", "ms", "w", "r"))
    mine = webhooks.create_webhook(mp, url=receiver.url + "/mp", namespace="pub")
    theirs = webhooks.create_webhook(ms, url=receiver.url + "/ms", namespace="sec")
    wide = webhooks.create_webhook(org.reg, url=receiver.url + "/wide")
    assert mine.owner == "key:mp"

    # Creating: maintainer of the namespace named; a writer, a reader of an internal namespace, a
    # registry-wide one: 403; a private namespace the key cannot see: 404 as a missing namespace.
    with pytest.raises(Refused, match="needs maintainer"):
        webhooks.create_webhook(w, url=receiver.url, namespace="pub")
    with pytest.raises(Refused, match="needs maintainer"):
        webhooks.create_webhook(ms, url=receiver.url, namespace="pub")
    with pytest.raises(Refused, match="needs admin"):
        webhooks.create_webhook(mp, url=receiver.url)
    with pytest.raises(RefusedUnseen, match="^namespace sec not found$") as unseen:
        webhooks.create_webhook(mp, url=receiver.url, namespace="sec")
    assert unseen.value.refusal.namespace == "sec"  # audited where only sec's members read it
    with pytest.raises(NotFound, match="^namespace nope not found$"):
        webhooks.create_webhook(mp, url=receiver.url, namespace="nope")

    # Seeing: inside the listing's query; an admin sees every one.
    assert [h.id for h in webhooks.list_webhooks(mp)] == [mine.id]
    assert [h.id for h in webhooks.list_webhooks(ms)] == [theirs.id]
    assert webhooks.list_webhooks(w) == webhooks.list_webhooks(r) == []
    assert {h.id for h in webhooks.list_webhooks(org.reg)} == {mine.id, theirs.id, wide.id}
    assert webhooks.manages_any(mp) and not webhooks.manages_any(w)

    # Everything on another namespace's (or a registry-wide) webhook: 404, as a missing one.
    for hook in (theirs.id, wide.id):
        for call in (
            lambda h: webhooks.get_webhook(mp, h),
            lambda h: webhooks.update_webhook(mp, h, description="mine now"),
            lambda h: webhooks.delete_webhook(mp, h),
            lambda h: webhooks.rotate_secret(mp, h),
            lambda h: webhooks.ping(mp, h),
            lambda h: deliveries.list_deliveries(mp, h),
            lambda h: deliveries.redeliver(mp, h, "msg_x"),
        ):
            with pytest.raises(NotFound, match=f"^webhook '{hook}' not found$"):
                call(hook)
    with pytest.raises(NotFound):  # a writer of pub does not see pub's webhooks either
        webhooks.get_webhook(w, mine.id)
    # Moving one's webhook: into a namespace one maintains only; registry-wide is an admin's.
    with pytest.raises(RefusedUnseen):
        webhooks.update_webhook(mp, mine.id, namespace="sec")
    with pytest.raises(Refused, match="needs admin"):
        webhooks.update_webhook(mp, mine.id, namespace=None)
    assert webhooks.get_webhook(org.reg, mine.id).namespace == "pub"

    # What a maintainer may do on its own namespace's webhook.
    d = Deliverer(org.reg).start()
    try:
        sent = webhooks.ping(mp, mine.id)
        wait_delivery(org.reg, mine.id, sent.event_id, "delivered")
        assert [x.event_id for x in deliveries.list_deliveries(mp, mine.id)] == [sent.event_id]
        deliveries.redeliver(mp, mine.id, sent.event_id)
        assert [x.path for x in receiver.wait_for(2)] == ["/hook/mp", "/hook/mp"]
    finally:
        d.stop()
    assert webhooks.update_webhook(mp, mine.id, description="ci").description == "ci"
    assert webhooks.rotate_secret(mp, mine.id).secret != mine.secret
    web_rows = deliveries.list_deliveries(mp, None, history=False)
    assert {x.webhook_id for x in web_rows} == {mine.id}
    assert {hook for hook, _ in deliveries.counts_by_webhook(mp)} == {mine.id}
    webhooks.delete_webhook(mp, mine.id)

    # The audit log names each change in the webhook's namespace, and a URL by its origin only.
    with org.reg.sessions() as session:
        events = session.scalars(
            select(m.AuditEvent).where(m.AuditEvent.subject == f"webhook:{mine.id}").order_by(m.AuditEvent.id)
        ).all()
    assert [e.action for e in events] == [
        "webhook_create",
        "webhook_redeliver",
        "webhook_update",
        "webhook_rotate_secret",
        "webhook_delete",
    ]
    assert {e.namespace for e in events} == {"pub"} and {e.actor for e in events} == {"key:mp"}
    assert events[0].details["url"] == f"http://127.0.0.1:{receiver.port}"
    assert "/hook" not in json.dumps([e.details for e in events])
