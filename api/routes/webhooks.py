"""/v1/webhooks: receivers of signed events, their delivery history, ping and redeliver.

A namespace's maintainers manage the webhooks of that namespace, admins every webhook (and alone create
registry-wide ones); the service decides it with the one policy (any signed-in principal gets through
here), and a webhook the caller may not manage answers 404, as a missing one.

Creating a webhook answers its signing secret once (`whsec_...`); every delivery carries the Standard
Webhooks headers (`webhook-id` = the delivery's `event_id`, `webhook-timestamp`, `webhook-signature`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import Field
from starlette.convertors import StringConvertor, register_url_convertor

from api.deps import SignedIn
from api.errors import ERROR_RESPONSES
from api.schemas import PLAIN, Strict
from registry.refs import ALIAS_GLOB_SCHEMA_PATTERN as ALIAS_GLOB
from registry.refs import NAMESPACE_SCHEMA_PATTERN as NAMESPACE
from registry.service.events import deliveries, webhooks
from registry.webhooks.types import SUBSCRIBABLE
from registry.webhooks.views import DeliveryView, PingSent, WebhookCreated, WebhookView


class IdConvertor(StringConvertor):
    """An id segment without `:`, so `{id}:ping` never matches GET/PATCH/DELETE `{id}`."""

    regex = r"[^/:]+"


register_url_convertor("hook_id", IdConvertor())
HOOK = "/{webhook_id:hook_id}"
EVENT_TYPES = ", ".join(t.value for t in SUBSCRIBABLE)
# The schema says the scheme; which hosts are allowed is the operator's (PEMREG_WEBHOOK_ALLOWED_HOSTS),
# checked by the service with the rest of the URL rules.
HTTP_URL = r"^\s*[Hh][Tt][Tt][Pp][Ss]?://"

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], responses=ERROR_RESPONSES)


class WebhookIn(Strict):
    url: str = Field(
        min_length=1, max_length=2048, pattern=HTTP_URL, description="http(s) URL on an allowed host"
    )
    events: list[str] = Field(default=[], max_length=16, description=f"any of: {EVENT_TYPES}; [] = all")
    namespace: str | None = Field(
        default=None,
        pattern=NAMESPACE,
        description="only this namespace's events; you must maintain it (omitted: registry-wide, admin)",
    )
    alias_pattern: str | None = Field(
        default=None, pattern=ALIAS_GLOB, description="glob over the alias of alias.moved / alias.deleted"
    )
    description: str | None = Field(default=None, max_length=webhooks.MAX_DESCRIPTION, pattern=PLAIN)


class WebhookPatch(Strict):
    url: str | None = Field(default=None, min_length=1, max_length=2048, pattern=HTTP_URL)
    events: list[str] | None = Field(default=None, max_length=16)
    namespace: str | None = Field(default=None, pattern=NAMESPACE, description="null clears")
    alias_pattern: str | None = Field(default=None, pattern=ALIAS_GLOB, description="null clears")
    description: str | None = Field(default=None, max_length=webhooks.MAX_DESCRIPTION, pattern=PLAIN)
    active: bool | None = Field(default=None, description="false: no new events; pending ones wait")


@router.post("", status_code=201, response_model=WebhookCreated)
def create(caller: SignedIn, body: WebhookIn) -> WebhookCreated:
    """The answer carries the signing secret; it is not shown again (rotate it to get a new one)."""
    return webhooks.create_webhook(caller.reg, **body.model_dump())


@router.get("", response_model=list[WebhookView])
def list_(caller: SignedIn) -> list[WebhookView]:
    return webhooks.list_webhooks(caller.reg)


@router.get(HOOK, response_model=WebhookView)
def show(caller: SignedIn, webhook_id: str) -> WebhookView:
    return webhooks.get_webhook(caller.reg, webhook_id)


@router.patch(HOOK, response_model=WebhookView)
def patch(caller: SignedIn, webhook_id: str, body: WebhookPatch) -> WebhookView:
    """JSON merge patch; `namespace` / `alias_pattern` given as null remove that filter."""
    given = body.model_fields_set
    cleared = {k: getattr(body, k) for k in ("namespace", "alias_pattern") if k in given}
    return webhooks.update_webhook(
        caller.reg,
        webhook_id,
        url=body.url,
        events=body.events,
        description=body.description,
        active=body.active,
        **cleared,
    )


@router.delete(HOOK, status_code=204, response_class=Response)
def delete(caller: SignedIn, webhook_id: str) -> Response:
    """The webhook and its delivery history; pending deliveries are dropped."""
    webhooks.delete_webhook(caller.reg, webhook_id)
    return Response(status_code=204)


@router.post(HOOK + ":rotate-secret", response_model=WebhookCreated)
def rotate_secret(caller: SignedIn, webhook_id: str) -> WebhookCreated:
    """A new secret (answered once); the previous one also signs until `previous_secret_until`."""
    return webhooks.rotate_secret(caller.reg, webhook_id)


@router.post(HOOK + ":ping", status_code=202, response_model=PingSent)
def ping(caller: SignedIn, webhook_id: str) -> PingSent:
    """Queue a `webhook.ping` event for this webhook; its result shows in the deliveries."""
    return webhooks.ping(caller.reg, webhook_id)


@router.get(HOOK + "/deliveries", response_model=list[DeliveryView])
def list_deliveries(
    caller: SignedIn,
    webhook_id: str,
    status: Annotated[str | None, Query(pattern="^(pending|delivered|dead)$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[DeliveryView]:
    """Newest first, each with its attempts (status code, latency, error)."""
    return deliveries.list_deliveries(caller.reg, webhook_id, status=status, limit=limit)


@router.get(HOOK + "/deliveries/{event_id:hook_id}", response_model=DeliveryView)
def show_delivery(caller: SignedIn, webhook_id: str, event_id: str) -> DeliveryView:
    return deliveries.get_delivery(caller.reg, webhook_id, event_id)


@router.post(HOOK + "/deliveries/{event_id:hook_id}:redeliver", status_code=202, response_model=DeliveryView)
def redeliver(caller: SignedIn, webhook_id: str, event_id: str) -> DeliveryView:
    """Deliver again with the same webhook-id and body (a delivered or dead one too); 409 while an
    attempt is in flight."""
    return deliveries.redeliver(caller.reg, webhook_id, event_id)
