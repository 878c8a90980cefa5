"""The web page's webhooks view (admins) and the serving block of the version page."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.service import Registry
from registry.service.admin.keys import create_key
from registry.service.catalog import lifecycle
from registry.service.events import webhooks
from tests.web.conftest import sign_in
from tests.web.seed import Seeded


def test_webhooks_page_lists_hooks_and_dead_letters_for_admins(
    client: TestClient, web_reg: Registry, seeded: Seeded
) -> None:
    allowed = Registry(web_reg.settings.model_copy(update={"webhook_allowed_hosts": "hooks.example.com"}))
    hook = webhooks.create_webhook(
        allowed,
        url="https://hooks.example.com/pemreg",
        events=["version.status_changed"],
        description="<b>ci</b>",
    )
    lifecycle.set_status(web_reg, "acme/math@1", "deprecate")
    lifecycle.set_status(web_reg, "acme/math@1", "restore")
    with transaction(web_reg.sessions) as session:  # one of them gave up: a dead letter
        first = session.scalars(
            select(m.WebhookDelivery)
            .where(m.WebhookDelivery.webhook_id == hook.id)
            .order_by(m.WebhookDelivery.id)
        ).first()
        assert first is not None
        first.status, first.attempts, first.last_status_code, first.last_error = "dead", 3, 503, "HTTP 503"

    sign_in(client, seeded.reader_key)
    assert client.get("/webhooks").status_code == 403
    assert 'href="/webhooks"' not in client.get("/").text

    sign_in(client, create_key(web_reg, "web-admin", "admin"))
    assert 'href="/webhooks"' in client.get("/").text
    html = client.get("/webhooks").text
    assert "https://hooks.example.com/pemreg" in html and "version.status_changed" in html
    assert "&lt;b&gt;ci&lt;/b&gt;" in html and "<b>ci</b>" not in html
    assert html.count('class="delivery-') == 2
    assert 'class="delivery-dead"' in html and "HTTP 503" in html
    dead_only = client.get("/webhooks?status=dead").text
    assert dead_only.count('class="delivery-') == 1


def test_version_page_serving_block_has_no_server_paths(
    client: TestClient, web_reg: Registry, seeded: Seeded
) -> None:
    sign_in(client, seeded.reader_key)
    html = client.get("/adapters/acme/math-medicine/versions/1").text
    assert "pemreg adapters pull acme/math-medicine@1 /srv/loras" in html
    assert "VLLM_LORA_RESOLVER_CACHE_DIR=/srv/loras" in html
    assert "/v1/adapters/acme/math-medicine/versions/1/download?file=adapter_model.safetensors" in html
    store_folder = web_reg.settings.resolved_artifact_store.removeprefix("file://")
    assert store_folder not in html
