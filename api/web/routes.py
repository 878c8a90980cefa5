"""Pages of the web catalog: thin over the service layer, rendered by Jinja2 with autoescape on.

Every page depends on `web_caller` (session cookie, or anonymous read when allowed) and reads with the
caller's Registry, exactly as the REST routes do. Registry errors become an HTML error page with the
same status the REST API would answer.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable, Coroutine
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute

from api.deps import Caller, base_registry
from api.errors import refusal_audit, status_of
from api.routes import downloads
from api.routes.common import version_ref
from registry import service
from registry.catalog.models import DELIVERY_STATUSES
from registry.errors import InvalidInput, NotFound, PermissionDenied, RegistryError, Unauthenticated
from registry.hashing import digest_of
from registry.pem.types import type_names
from registry.refs import parse_tag_filters
from registry.service.access.namespaces import protected_patterns
from registry.service.access.policy import matches_protected
from registry.service.admin.keys import authenticate
from registry.service.catalog.lineage import MAX_DEPTH
from registry.service.catalog.queries import FILTERABLE_STATUSES
from registry.service.catalog.serving import serving_refs
from registry.service.catalog.web_views import (
    aliases_by_adapter,
    gate_results,
    lineage_around,
    read_version_text,
    version_details,
)
from registry.service.compositions import reads as comps
from registry.service.compositions.status import TERMINAL, RunStatus
from registry.service.events import deliveries, webhooks
from registry.training import parse_param_filter

from . import charts, graph
from .oidc import sso_enabled
from .render import page
from .session import COOKIE, SignInRequired, safe_next, same_origin, sessions_of, signed_in, web_caller

PAGE_SIZE = 50
PEM_TYPES = type_names()


class PageRoute(APIRoute):
    """Pages answer HTML even when they fail: a sign-in redirect, or an error page with the status."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse("/signin?" + urlencode({"next": target}), status_code=303)
            except RegistryError as exc:
                # The caller web_caller resolved, if it got that far: the frame still shows who is in.
                frame = chrome(request, getattr(request.state, "web_caller", None))
                response = page(request, "error.html", status_of(exc), message=str(exc), **frame)
                response.background = refusal_audit(request, exc)
                return response

        return guarded


router = APIRouter(route_class=PageRoute, include_in_schema=False)
WebCaller = Annotated[Caller, Depends(web_caller)]


def chrome(request: Request, caller: Caller | None = None) -> dict[str, Any]:
    """What the page frame shows: who is signed in, and the sign-out form's CSRF token."""
    cookie = request.cookies.get(COOKIE)
    signed = caller is not None and caller.name != "anonymous"
    return {
        "caller": caller if signed else None,
        "csrf": sessions_of(request).csrf_token(cookie) if signed and cookie else "",
        "public_read": base_registry(request).settings.public_read,
        "sso": sso_enabled(request),
        "webhooks_link": signed and caller is not None and webhooks.manages_any(caller.reg),
    }


BASE_MODELS_TTL = 30.0  # seconds; the filter's choices may lag a new base model by this much


def _base_models(request: Request, caller: Caller) -> list[Any]:
    """Choices of the base-model filter, cached briefly per app (one query less per catalog page)."""
    cached = getattr(request.app.state, "web_base_models", None)
    now = time.monotonic()
    if cached is None or cached[0] < now:
        cached = (now + BASE_MODELS_TTL, service.list_base_models(caller.reg)[:200])
        request.app.state.web_base_models = cached
    return cached[1]


def _protection(caller: Caller, names: list[str]) -> Callable[[str, str], bool]:
    """For the templates: is alias `a` of adapter `ns/name` protected (moved only by maintainers)?"""
    patterns = protected_patterns(caller.reg, [n.split("/", 1)[0] for n in names])
    return lambda name, alias: matches_protected(patterns.get(name.split("/", 1)[0], []), alias)


def _clean(value: str | None) -> str | None:
    return value.strip() or None if value else None


@router.get("/", name="web_catalog")
def catalog(
    request: Request,
    caller: WebCaller,
    q: str | None = None,
    base_model: str | None = None,
    pem_type: str | None = None,
    task: str | None = None,
    tag: str | None = None,
    status: str | None = None,
    page_token: str | None = None,
    metric: str | None = None,
    param: str | None = None,
    dataset: str | None = None,
) -> Response:
    filters = {
        "q": _clean(q),
        "base_model": _clean(base_model),
        "pem_type": _clean(pem_type),
        "task": _clean(task),
        "tag": _clean(tag),
        "status": _clean(status),
        "metric": _clean(metric),  # a version's training record: accuracy>=0.8
        "param": _clean(param),
        "dataset": _clean(dataset),
    }
    if filters["pem_type"] and filters["pem_type"] not in PEM_TYPES:
        raise InvalidInput(f"pem_type: must be one of {', '.join(PEM_TYPES)}", field="pem_type")
    result = service.list_adapters(
        caller.reg,
        base_model=filters["base_model"],
        pem_type=filters["pem_type"],
        task=filters["task"],
        tags=parse_tag_filters([filters["tag"]]) if filters["tag"] else None,
        query=filters["q"],
        limit=PAGE_SIZE,
        page_token=_clean(page_token),
        status=filters["status"],
        metrics=[filters["metric"]] if filters["metric"] else None,
        params=parse_param_filter([filters["param"]]) if filters["param"] else None,
        datasets=[filters["dataset"]] if filters["dataset"] else None,
    )
    active = {k: v for k, v in filters.items() if v}
    next_url = (
        "/?" + urlencode({**active, "page_token": result.next_page_token}) if result.next_page_token else None
    )
    return page(
        request,
        "catalog.html",
        items=result.items,
        protected=_protection(caller, [a.name for a in result.items]),
        aliases=aliases_by_adapter(caller.reg, [a.name for a in result.items]),
        filters=filters,
        filtered=bool(active),
        first_url="/?" + urlencode(active) if page_token else None,
        next_url=next_url,
        base_models=_base_models(request, caller),
        pem_types=PEM_TYPES,
        statuses=FILTERABLE_STATUSES,
        **chrome(request, caller),
    )


@router.get("/adapters/{ns}/{name}", name="web_adapter")
def adapter_page(request: Request, caller: WebCaller, ns: str, name: str) -> Response:
    version_ref(ns, name)  # validates the name (422 naming it) before any query
    adapter = service.show_adapter(caller.reg, f"{ns}/{name}")
    versions = sorted(adapter.versions or [], key=lambda v: v.version, reverse=True)
    return page(
        request,
        "adapter.html",
        adapter=adapter,
        versions=versions,
        protected=_protection(caller, [adapter.name]),
        **chrome(request, caller),
    )


@router.get("/adapters/{ns}/{name}/versions/{v}", name="web_version")
def version_page(request: Request, caller: WebCaller, ns: str, name: str, v: str) -> Response:
    origin = version_details(caller.reg, version_ref(ns, name, v))
    version = origin.version
    card = read_version_text(caller.reg, version, "README.md")
    # A folder registered with its own README.md keeps it; the registry's card is then MODEL_CARD.md.
    registry_card = (
        read_version_text(caller.reg, version, "MODEL_CARD.md") if "MODEL_CARD.md" in version.files else None
    )
    provenance = _json(read_version_text(caller.reg, version, "provenance.json"))
    return page(
        request,
        "version.html",
        v=version,
        protected=_protection(caller, [version.name]),
        origin=origin,
        bars=[(row, charts.metric_bars(row)) for row in origin.metrics],
        bar_h=charts.BAR_H,
        card=card,
        card_listed="README.md" in version.files,
        registry_card=registry_card,
        provenance=provenance,
        # Per-module reports can run to hundreds of rows: the page shows the method's summary.
        method={k: v for k, v in ((provenance or {}).get("method") or {}).items() if k != "modules"},
        serving=serving_refs(
            caller.reg, version_ref(ns, name, str(version.version)), link=downloads.route_link(request)
        ),
        **chrome(request, caller),
    )


def _json(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


@router.get("/adapters/{ns}/{name}/versions/{v}/lineage", name="web_lineage")
def lineage_page(
    request: Request, caller: WebCaller, ns: str, name: str, v: str, depth: str = "10"
) -> Response:
    if not depth.isdigit() or not 1 <= int(depth) <= MAX_DEPTH:
        raise InvalidInput(f"depth: must be a number between 1 and {MAX_DEPTH}", field="depth")
    version, up, down = lineage_around(caller.reg, version_ref(ns, name, v), int(depth))
    drawing = graph.layout(up.root, up, down)
    return page(
        request,
        "lineage.html",
        v=version,
        g=drawing,
        depth=int(depth),
        ancestors=len(up.nodes) - 1,
        descendants=len(down.nodes) - 1,
        **chrome(request, caller),
    )


@router.get("/adapters/{ns}/{name}/versions/{v}/download", name="web_download")
def download(
    request: Request, caller: WebCaller, ns: str, name: str, v: str, file: str = downloads.WEIGHTS
) -> Response:
    """The REST download (presigned redirect on S3, a checked stream on a file store), cookie-authorised."""
    return downloads.download_version(caller, request, ns, name, v, file=file, redirect=True, expires=3600)


@router.get("/digest", name="web_digest")
def digest_page(request: Request, caller: WebCaller, sha256: str | None = None) -> Response:
    digest = _clean(sha256)
    matches, error = None, None
    if digest:
        hexdigest = digest_of("sha256:" + digest.lower().removeprefix("sha256:"))
        try:
            matches = service.find_by_digest(caller.reg, hexdigest)
        except NotFound as exc:
            matches, error = [], str(exc)
    return page(
        request, "digest.html", sha256=digest or "", matches=matches, error=error, **chrome(request, caller)
    )


def _flow_run_url(request: Request, flow_run_id: str | None) -> str | None:
    ui = base_registry(request).settings.prefect_ui_url
    return f"{ui.rstrip('/')}/runs/flow-run/{flow_run_id}" if ui and flow_run_id else None


@router.get("/compositions", name="web_compositions")
def compositions_page(
    request: Request, caller: WebCaller, status: str | None = None, page_token: str | None = None
) -> Response:
    wanted = _clean(status)
    result = comps.list_compositions(
        caller.reg, status=wanted, limit=PAGE_SIZE, page_token=_clean(page_token)
    )
    active = {"status": wanted} if wanted else {}
    return page(
        request,
        "compositions.html",
        runs=result.items,
        first_url="/compositions?" + urlencode(active) if page_token else None,
        next_url="/compositions?" + urlencode({**active, "page_token": result.next_page_token})
        if result.next_page_token
        else None,
        status=wanted or "",
        statuses=[s.value for s in RunStatus],
        terminal=[s.value for s in TERMINAL],
        **chrome(request, caller),
    )


@router.get("/compositions/{composition_id}", name="web_composition")
def composition_page(request: Request, caller: WebCaller, composition_id: str) -> Response:
    run = comps.get(caller.reg, composition_id)
    labels = [f"{i.name}@{i.version}" for i in run.inputs]
    return page(
        request,
        "composition.html",
        run=run,
        labels=labels,
        cells=charts.heatmap(run.interference, labels),
        candidate_bars=charts.candidate_bars(run.search) if run.search else [],
        bar_h=charts.BAR_H,
        gates=gate_results(caller.reg, run),
        flow_run_url=_flow_run_url(request, run.flow_run_id),
        terminal=[s.value for s in TERMINAL],
        **chrome(request, caller),
    )


@router.get("/compositions/{composition_id}/status.json", name="web_composition_status")
def composition_status(caller: WebCaller, composition_id: str) -> Response:
    """What the list and page poll while a run is pending or running."""
    run = comps.get(caller.reg, composition_id)
    body = {"id": run.id, "status": run.status, "error": run.error, "terminal": run.status in TERMINAL}
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


@router.get("/webhooks", name="web_webhooks")
def webhooks_page(request: Request, caller: WebCaller, status: str | None = None) -> Response:
    """Webhooks and their recent deliveries (dead letters included): those of the namespaces the caller
    maintains (every one for an admin), as the API decides."""
    if not webhooks.manages_any(caller.reg):
        raise PermissionDenied("webhooks are shown to namespace maintainers and admins")
    wanted = _clean(status)
    return page(
        request,
        "webhooks.html",
        hooks=webhooks.list_webhooks(caller.reg),
        counts=deliveries.counts_by_webhook(caller.reg),
        deliveries=deliveries.list_deliveries(
            caller.reg, None, status=wanted, limit=PAGE_SIZE, history=False
        ),
        status=wanted or "",
        statuses=DELIVERY_STATUSES,
        **chrome(request, caller),
    )


@router.get("/signin", name="web_signin")
def signin_form(request: Request, next: str | None = None) -> Response:
    return page(
        request, "signin.html", next=safe_next(next), error=None, **chrome(request, signed_in(request))
    )


@router.post("/signin")
def signin(
    request: Request, key: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/"
) -> Response:
    if not same_origin(request):
        return page(
            request, "error.html", 403, message="sign-in from another site refused", **chrome(request)
        )
    base = base_registry(request)
    try:
        found = authenticate(base, key.strip())
    except Unauthenticated as exc:
        return page(request, "signin.html", 401, next=safe_next(next), error=str(exc), **chrome(request))
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        COOKIE,
        sessions_of(request).issue(base, found),
        max_age=base.settings.session_max_age_seconds,
        httponly=True,
        samesite="lax",
        secure=base.settings.session_cookie_secure or request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/signout", name="web_signout")
def signout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
    cookie = request.cookies.get(COOKIE)
    expected = sessions_of(request).csrf_token(cookie) if cookie else None
    if not same_origin(request) or not expected or not hmac.compare_digest(csrf, expected):
        return page(request, "error.html", 403, message="sign-out needs the form's token", **chrome(request))
    assert cookie is not None  # the token check above needs one
    sessions_of(request).end(base_registry(request), cookie)  # a replayed copy of the cookie is refused
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax")
    return response
