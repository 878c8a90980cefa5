"""/v1/compositions: trigger (202) and dry run `:validate` (read on every input's namespace, write on the
output's, maintainer for a protected output alias), list and poll (the runs whose namespaces the
caller may read).

The body is limited to 64 KiB before it is read (api/middleware.py); the spec is parsed and validated
on a worker thread (422 naming the field and line), its inputs resolved and every check of `:validate`
run before any flow run starts (`registry.service.compositions.runs.start`).
A cache hit is
answered at once (a `succeeded` run with `cache_hit: true`); otherwise the flow runs as a Prefect
deployment run when a Prefect API is configured, else as a background flow run of this process (the
runners `api.app.create_app` registers). `{id}` is a run id or any unique prefix of one.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.deps import Reader, SignedIn
from api.errors import ERROR_RESPONSES
from api.schemas import inline_schema
from registry.errors import InvalidInput
from registry.service.compositions import reads as comps
from registry.service.compositions import runs
from registry.service.compositions.dry_run import dry_run
from registry.service.compositions.reads import CompositionView
from registry.service.compositions.status import RunStatus
from registry.spec import CompositionSpec, load_spec
from registry.views import Page

from .common import PageToken

router = APIRouter(prefix="/v1", tags=["compositions"], responses=ERROR_RESPONSES)

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
SPEC_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": inline_schema(CompositionSpec)},
            "application/yaml": {"schema": inline_schema(CompositionSpec)},  # the same object, as YAML
        },
    }
}


def parse_spec(body: bytes, content_type: str) -> CompositionSpec:
    """Spec text -> CompositionSpec, every failure an InvalidInput naming the field. Runs on a worker
    thread (the body is at most 64 KiB: api/middleware.py), never on the event loop."""
    if not body.strip():
        raise InvalidInput("spec: the request body is empty", field="spec")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("spec: the body is not UTF-8 text", field="spec") from None
    try:
        if content_type not in YAML_TYPES:
            try:
                data = json.loads(text)
            except ValueError:
                raise InvalidInput(
                    "spec: not valid JSON (send YAML with Content-Type: application/yaml)", field="spec"
                ) from None
            if not isinstance(data, dict):
                raise InvalidInput("spec: expected a JSON object", field="spec")
            text = json.dumps(data, indent=1)  # one field a line, so errors can name a line
        return load_spec(text if "\n" in text else text + "\n")
    except RecursionError:
        raise InvalidInput("spec: nested too deeply", field="spec") from None
    except (OverflowError, ValueError) as exc:  # a number no float or int can hold
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise InvalidInput(f"spec: a value is out of range ({first})", field="spec") from None


async def _spec(request: Request) -> CompositionSpec:
    body = await request.body()  # bounded by the body limit before this reads it
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    return await run_in_threadpool(parse_spec, body, content_type)


@router.post(
    "/compositions",
    status_code=202,
    response_model=CompositionView,
    openapi_extra=SPEC_BODY,
    summary="Start a composition",
)
async def create_composition(request: Request, caller: SignedIn) -> JSONResponse:
    spec = await _spec(request)
    view = await run_in_threadpool(runs.start, caller.reg, spec, "api", "default")
    return JSONResponse(status_code=202, content=view.model_dump(mode="json"))


@router.post(
    "/compositions:validate", openapi_extra=SPEC_BODY, summary="Dry run: resolve, check, interference"
)
async def validate_composition(request: Request, caller: SignedIn) -> dict[str, Any]:
    spec = await _spec(request)
    report = await run_in_threadpool(dry_run, caller.reg, spec)
    return report.to_dict()


@router.get("/compositions", response_model=Page[CompositionView])
def list_compositions(
    caller: Reader,
    status: str | None = Query(default=None, json_schema_extra={"enum": [s.value for s in RunStatus]}),
    limit: int = Query(default=50, ge=1, le=comps.MAX_LIMIT),
    page_token: PageToken = None,
) -> Page[CompositionView]:
    """Newest first; `next_page_token` is set when more runs follow."""
    return comps.list_compositions(caller.reg, status=status, limit=limit, page_token=page_token)


@router.get("/compositions/{composition_id}", response_model=CompositionView)
def get_composition(composition_id: str, caller: Reader) -> CompositionView:
    """`composition_id`: the run id or any unique prefix of it (422 when the prefix is ambiguous)."""
    return comps.get(caller.reg, composition_id)
