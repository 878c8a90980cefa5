"""/v1/base-models: list and show (reader), register (writer), merge two into one (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from api.deps import Admin, Reader, Writer
from api.errors import ERROR_RESPONSES
from api.routes.reads import catalog_read
from api.schemas import BASE_LABEL_PATTERN, BaseMergeIn, BaseModelIn
from registry import service
from registry.base_evidence import BaseEvidence, config_fingerprint
from registry.service.registration.base_merge import merge_base_models
from registry.service.registration.base_reads import show_base_model
from registry.views import BaseMerged, BaseModelDetail, BaseModelView

router = APIRouter(prefix="/v1/base-models", tags=["base models"], responses=ERROR_RESPONSES)


@router.get("", response_model=list[BaseModelView])
@catalog_read
def list_base_models(caller: Reader) -> list[BaseModelView]:
    return service.list_base_models(caller.reg)


@router.post(
    "",
    status_code=201,
    response_model=BaseModelView,
    responses={200: {"model": BaseModelView, "description": "already registered, same source"}},
)
def add_base_model(caller: Writer, body: BaseModelIn, response: Response) -> BaseModelView:
    """`config` (the base's config.json, read from a local copy by the caller) is recorded with its
    fingerprint, so adapters whose config names a folder holding this base are recognised."""
    evidence = None
    if body.config is not None:
        archs = body.config.get("architectures") or [None]
        evidence = BaseEvidence(
            config_sha256=config_fingerprint(body.config),
            weights_sha256=body.sha256,
            architecture=archs[0] if isinstance(archs[0], str) else None,
            config=body.config,
        )
    view, created = service.add_base_model(
        caller.reg,
        body.name,
        source=body.source,
        revision=body.revision,
        sha256=body.sha256,
        architecture=body.architecture,
        local=False,  # a REST caller's path is never probed on the server's disk
        evidence=evidence,
    )
    response.status_code = 201 if created else 200
    return view


@router.post(":merge", response_model=BaseMerged)
def merge(caller: Admin, body: BaseMergeIn) -> BaseMerged:
    """Move every adapter of `base` to `into` and remove `base` (a catalog repair; audited). 409 when
    the two are recorded as different models or an adapter does not fit `into`'s config."""
    return merge_base_models(caller.reg, body.base, body.into)


@router.get("/{label:path}", response_model=BaseModelDetail)
@catalog_read
def show(
    caller: Reader,
    label: Annotated[
        str, Path(max_length=385, pattern=BASE_LABEL_PATTERN, description="NAME or NAME@REVISION")
    ],
) -> BaseModelDetail:
    """One base model with its identity (digest, config fingerprint), whether it was registered on
    the way by an adapter, and its adapters."""
    return show_base_model(caller.reg, label)
