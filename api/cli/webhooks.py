"""`pemreg webhooks list|create|show|set|delete|rotate-secret|deliveries|ping|redeliver|listen`.

Locally (no PEMREG_URL) these act on this machine's catalog; in remote mode they call the server's
/v1/webhooks API as the key or SSO user: a namespace's maintainers manage its webhooks, admins every
one. `listen` is the receiving side: a signed-event receiver that pulls the adapter an alias now points
to and runs a command (api/cli/webhook_listen.py).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from registry.errors import InvalidInput

from . import remote
from .output import console, err_console, id_table, print_json, print_table

if TYPE_CHECKING:
    from registry.webhooks.views import DeliveryView, WebhookView

app = typer.Typer(
    help="Webhooks: signed events sent to your endpoints (namespace maintainers and admins).",
    no_args_is_help=True,
)
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
IdArg = Annotated[str, typer.Argument(help="the webhook's id (from `pemreg webhooks list`)")]
EventOpt = Annotated[
    list[str] | None,
    typer.Option("--event", help="an event type to send (repeatable; default: every type)"),
]


def hooks() -> Any:
    """The webhook calls of this mode: registry.client.Client (remote) or the service (local); both
    take and return the same views."""
    server = remote.current()
    if server is not None:
        from registry.client import Client

        return Client(server.url, server.api_key or None)
    from registry.service.events import deliveries, webhooks

    from .deps import registry

    class Local:
        reg = registry()

        def list_webhooks(self) -> list[WebhookView]:
            return webhooks.list_webhooks(self.reg)

        def create_webhook(self, url: str, **fields: Any) -> Any:
            return webhooks.create_webhook(self.reg, url=url, **fields)

        def get_webhook(self, webhook_id: str) -> WebhookView:
            return webhooks.get_webhook(self.reg, webhook_id)

        def update_webhook(self, webhook_id: str, **fields: Any) -> WebhookView:
            return webhooks.update_webhook(self.reg, webhook_id, **fields)

        def delete_webhook(self, webhook_id: str) -> None:
            webhooks.delete_webhook(self.reg, webhook_id)

        def rotate_webhook_secret(self, webhook_id: str) -> Any:
            return webhooks.rotate_secret(self.reg, webhook_id)

        def ping_webhook(self, webhook_id: str) -> Any:
            return webhooks.ping(self.reg, webhook_id)

        def webhook_deliveries(self, webhook_id: str, **filters: Any) -> list[DeliveryView]:
            return deliveries.list_deliveries(self.reg, webhook_id, **filters)

        def webhook_delivery(self, webhook_id: str, event_id: str) -> DeliveryView:
            return deliveries.get_delivery(self.reg, webhook_id, event_id)

        def redeliver(self, webhook_id: str, event_id: str) -> DeliveryView:
            return deliveries.redeliver(self.reg, webhook_id, event_id)

    return Local()


def _filters(hook: WebhookView) -> str:
    parts = [", ".join(hook.events) or "every event"]
    if hook.namespace:
        parts.append(f"namespace {hook.namespace}")
    if hook.alias_pattern:
        parts.append(f"alias {hook.alias_pattern}")
    return "; ".join(parts)


@app.command("list")
def list_(json_out: JsonOpt = False) -> None:
    """The webhooks you manage (those of namespaces you maintain; every one for an admin), with their
    filters (never the secrets)."""
    items = hooks().list_webhooks()
    if json_out:
        print_json(items)
        return
    table = id_table("id", "url", columns=("sends", "active", "owner"))
    for h in items:
        table.add_row(h.id, h.url, _filters(h), "yes" if h.active else "no", h.owner)
    print_table(table)


@app.command("create")
def create(
    url: Annotated[str, typer.Argument(help="http(s) URL on a host in PEMREG_WEBHOOK_ALLOWED_HOSTS")],
    event: EventOpt = None,
    namespace: Annotated[
        str | None,
        typer.Option(
            "--namespace", help="only this namespace's events (one you maintain; without it: admin only)"
        ),
    ] = None,
    alias_pattern: Annotated[
        str | None, typer.Option("--alias-pattern", help="glob over the alias of alias events, e.g. 'prod'")
    ] = None,
    description: Annotated[str | None, typer.Option("--description", help="what the webhook is for")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Create a webhook. Its signing secret (whsec_...) is printed once, alone on the last line."""
    created = hooks().create_webhook(
        url, events=event or [], namespace=namespace, alias_pattern=alias_pattern, description=description
    )
    if json_out:
        print_json(created)
        return
    err_console.print(
        f"created webhook {created.id} -> {created.url} ({_filters(created)}); "
        "store the signing secret now, it is not shown again",
        markup=False,
        soft_wrap=True,
    )
    console.print(created.secret, markup=False)


@app.command("show")
def show(webhook_id: IdArg, json_out: JsonOpt = False) -> None:
    """One webhook: URL, filters, owner, and until when a rotated-out secret still signs."""
    h = hooks().get_webhook(webhook_id)
    if json_out:
        print_json(h)
        return
    for key, value in (
        ("id", h.id),
        ("url", h.url),
        ("sends", _filters(h)),
        ("active", "yes" if h.active else "no"),
        ("owner", h.owner),
        ("description", h.description or "-"),
        ("created", f"{h.created_at:%Y-%m-%d %H:%M:%S}"),
        (
            "previous secret signs until",
            f"{h.previous_secret_until:%Y-%m-%d %H:%M}" if h.previous_secret_until else "-",
        ),
    ):
        console.print(f"{key}: {value}", markup=False, soft_wrap=True)


@app.command("set")
def set_(
    webhook_id: IdArg,
    url: Annotated[str | None, typer.Option("--url", help="a new target URL (allowed hosts only)")] = None,
    event: EventOpt = None,
    namespace: Annotated[str | None, typer.Option("--namespace", help="'' removes the filter")] = None,
    alias_pattern: Annotated[
        str | None, typer.Option("--alias-pattern", help="'' removes the filter")
    ] = None,
    description: Annotated[str | None, typer.Option("--description", help="what the webhook is for")] = None,
    active: Annotated[
        bool | None, typer.Option("--active/--inactive", help="pause or resume sending")
    ] = None,
) -> None:
    """Change a webhook (only the options given)."""
    fields: dict[str, Any] = {
        k: v
        for k, v in {
            "url": url,
            "events": event,
            "namespace": namespace,
            "alias_pattern": alias_pattern,
            "description": description,
            "active": active,
        }.items()
        if v is not None
    }
    for key in ("namespace", "alias_pattern"):
        if fields.get(key) == "":
            fields[key] = None
    if not fields:
        raise InvalidInput("nothing to change: give --url, --event, --namespace, ... ", field="options")
    h = hooks().update_webhook(webhook_id, **fields)
    console.print(f"{h.id} -> {h.url} ({_filters(h)}; {'active' if h.active else 'inactive'})", markup=False)


@app.command("delete")
def delete(webhook_id: IdArg) -> None:
    """Delete a webhook and its delivery history (pending deliveries are dropped)."""
    hooks().delete_webhook(webhook_id)
    console.print(f"deleted webhook {webhook_id}", markup=False)


@app.command("rotate-secret")
def rotate_secret(webhook_id: IdArg) -> None:
    """A new signing secret, printed once on the last line; the previous one keeps signing beside it
    for PEMREG_WEBHOOK_SECRET_GRACE_HOURS (default 24), so receivers can switch without a gap."""
    created = hooks().rotate_webhook_secret(webhook_id)
    until = f"{created.previous_secret_until:%Y-%m-%d %H:%M} UTC" if created.previous_secret_until else "now"
    err_console.print(f"webhook {created.id}: new secret; the previous one signs until {until}", markup=False)
    console.print(created.secret, markup=False)


def _outcome(d: DeliveryView) -> str:
    if d.status == "delivered":
        return f"HTTP {d.last_status_code}"
    if d.status == "dead":
        return f"dead: {d.last_error or '-'}"
    if d.attempts == 0 or d.last_error is None:
        return "queued"
    when = f"{d.next_attempt_at:%H:%M:%S}" if d.next_attempt_at else "?"
    return f"{d.last_error}; next attempt {when}"


@app.command("deliveries")
def deliveries_(
    webhook_id: IdArg,
    status: Annotated[str | None, typer.Option("--status", help="pending | delivered | dead")] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=500, help="at most this many, newest first")
    ] = 50,
    json_out: JsonOpt = False,
) -> None:
    """Recent deliveries, newest first: event id (= webhook-id header), type, status, attempts, result."""
    items = hooks().webhook_deliveries(webhook_id, status=status, limit=limit)
    if json_out:
        print_json(items)
        return
    table = id_table("event id", columns=("type", "status", "attempts", "latency", "result", "created"))
    for d in items:
        latency = f"{d.last_latency_ms:.0f} ms" if d.last_latency_ms is not None else "-"
        table.add_row(
            d.event_id,
            d.event_type,
            d.status,
            str(d.attempts),
            latency,
            _outcome(d),
            f"{d.created_at:%Y-%m-%d %H:%M:%S}",
        )
    print_table(table)


@app.command("ping")
def ping(
    webhook_id: IdArg,
    wait: Annotated[
        float, typer.Option("--wait", min=0, help="seconds to wait for the first attempt")
    ] = 20.0,
) -> None:
    """Send a signed `webhook.ping` and print what the endpoint answered (exit 1 if it failed)."""
    api = hooks()
    sent = api.ping_webhook(webhook_id)
    deadline = time.monotonic() + wait
    while True:
        d = api.webhook_delivery(webhook_id, sent.event_id)
        if d.status == "delivered" or d.last_status_code is not None or d.last_error is not None:
            break
        if time.monotonic() > deadline:
            console.print(
                f"ping {sent.event_id} queued; no attempt yet (is `pemreg serve` running?)", markup=False
            )
            return
        time.sleep(0.2)
    latency = f" in {d.last_latency_ms:.0f} ms" if d.last_latency_ms is not None else ""
    if d.status == "delivered":
        console.print(f"ping {sent.event_id}: HTTP {d.last_status_code}{latency}", markup=False)
        return
    raise InvalidInput(f"ping {sent.event_id}: {_outcome(d)}{latency}", field="url")


@app.command("redeliver")
def redeliver(
    webhook_id: IdArg,
    event_id: Annotated[str, typer.Argument(help="the event id (= its webhook-id header)")],
) -> None:
    """Send an event again with the same webhook-id and body (delivered or dead ones too)."""
    d = hooks().redeliver(webhook_id, event_id)
    console.print(f"{d.event_id} ({d.event_type}) queued again for webhook {d.webhook_id}", markup=False)


@app.command("listen")
def listen(
    directory: Annotated[
        Path, typer.Option("--dir", help="the serving host's adapter folder (as `adapters pull`)")
    ],
    secret: Annotated[
        str,
        typer.Option(
            "--secret", envvar="PEMREG_WEBHOOK_SECRET", help="the webhook's whsec_ secret", show_default=False
        ),
    ],
    exec_: Annotated[
        str | None,
        typer.Option("--exec", help="command to run after each pull (env PEMREG_* describe the event)"),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="port to listen on")] = 9100,
    alias: Annotated[str, typer.Option("--alias", help="glob of the aliases to follow")] = "*",
    exec_timeout: Annotated[float, typer.Option("--exec-timeout", min=1, help="seconds per command")] = 300.0,
) -> None:
    """Receive signed events: on alias.moved, pull the version the alias now points to into --dir (the
    layout vLLM's filesystem resolver and LoRAX read), move the alias link, then run --exec; on
    alias.deleted, remove the link and run --exec. Each event is handled once (by webhook-id), in order;
    a failed pull or command answers 500, so the registry retries it later."""
    from .webhook_listen import serve_listener

    serve_listener(
        directory=directory,
        secret=secret,
        command=exec_,
        host=host,
        port=port,
        alias_glob=alias,
        exec_timeout=exec_timeout,
    )
