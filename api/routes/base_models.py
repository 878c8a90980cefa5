"""/v1/base-models: list (reader) and register (writer)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import Reader, Writer
from api.errors import ERROR_RESPONSES
from api.schemas import BaseModelIn
from registry import service
from registry.views import BaseModelView

router = APIRouter(prefix="/v1/base-models", tags=["base models"], responses=ERROR_RESPONSES)


@router.get("", response_model=list[BaseModelView])
def list_base_models(caller: Reader) -> list[BaseModelView]:
    return service.list_base_models(caller.reg)


@router.post(
    "",
    status_code=201,
    response_model=BaseModelView,
    responses={200: {"model": BaseModelView, "description": "already registered, same source"}},
)
def add_base_model(caller: Writer, body: BaseModelIn, response: Response) -> BaseModelView:
    view, created = service.add_base_model(
        caller.reg,
        body.name,
        source=body.source,
        revision=body.revision,
        sha256=body.sha256,
        architecture=body.architecture,
        local=False,  # a REST caller's path is never probed on the server's disk
    )
    response.status_code = 201 if created else 200
    return view
