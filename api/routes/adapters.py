"""Catalog reads and alias moves: /v1/adapters/..."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from api.deps import Reader, SignedIn
from api.errors import ERROR_RESPONSES
from api.schemas import AliasIn
from registry import service
from registry.refs import Ref, parse_tag_filters, validate_name
from registry.service.catalog.lineage import MAX_DEPTH
from registry.service.catalog.queries import MAX_LIMIT
from registry.service.catalog.serving import serving_refs
from registry.serving import DEFAULT_DIR, ServingRefs
from registry.training import (
    DATASET_PATTERN,
    METRIC_FILTER_PATTERN,
    PARAM_FILTER_PATTERN,
    check_datasets,
    parse_param_filter,
)
from registry.views import AdapterView, LineageGraph, Page, VersionView

from .common import (
    VERSION,
    AliasName,
    Name,
    Namespace,
    PageToken,
    Selector,
    TagFilter,
    version_ref,
)
from .downloads import route_link
from .reads import catalog_read
from .serialized import json_view

router = APIRouter(prefix="/v1/adapters", tags=["adapters"], responses=ERROR_RESPONSES)


@router.get("", response_model=Page[AdapterView])
@catalog_read
def list_adapters(
    caller: Reader,
    base_model: Annotated[str | None, Query(description="NAME or NAME@REVISION")] = None,
    pem_type: Annotated[str | None, Query(description="lora | ia3")] = None,
    task: str | None = None,
    tag: TagFilter = [],  # noqa: B006
    q: Annotated[str | None, Query(description="text in name, task or description")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    page_token: PageToken = None,
    include_archived: Annotated[
        bool, Query(description="also adapters whose versions are all archived")
    ] = False,
    status: Annotated[
        Literal["active", "deprecated", "archived"] | None,
        Query(description="adapters with a version in this status (archived implies include_archived)"),
    ] = None,
    metric: Annotated[
        list[str],
        Query(
            description="training metric condition, e.g. accuracy>=0.8 (repeatable)",
            json_schema_extra={"items": {"type": "string", "pattern": METRIC_FILTER_PATTERN}},
        ),
    ] = [],  # noqa: B006
    param: Annotated[
        list[str],
        Query(
            description="training hyper-parameter name:value (repeatable)",
            json_schema_extra={"items": {"type": "string", "pattern": PARAM_FILTER_PATTERN}},
        ),
    ] = [],  # noqa: B006
    dataset: Annotated[
        list[str],
        Query(
            description="a training dataset URI (repeatable)",
            json_schema_extra={"items": {"type": "string", "pattern": DATASET_PATTERN}},
        ),
    ] = [],  # noqa: B006
) -> Response:
    """Filters combine with AND; `metric`, `param` and `dataset` match a version's training record."""
    page = service.list_adapters(
        caller.reg,
        base_model=base_model,
        pem_type=pem_type,
        task=task,
        tags=parse_tag_filters(tag),
        query=q,
        limit=limit,
        page_token=page_token,
        include_archived=include_archived,
        status=status,
        metrics=metric,
        params=parse_param_filter(param),
        datasets=check_datasets(dataset),
    )
    return json_view(page)


@router.get("/{ns}/{name}", response_model=AdapterView)
@catalog_read
def show_adapter(
    caller: Reader,
    ns: Namespace,
    name: Name,
    include_archived: Annotated[bool, Query(description="also archived and deleted versions")] = False,
) -> Response:
    validate_name(f"{ns}/{name}", "name")
    return json_view(service.show_adapter(caller.reg, f"{ns}/{name}", include_archived=include_archived))


@router.get(VERSION, response_model=VersionView)
@catalog_read
def get_version(caller: Reader, ns: Namespace, name: Name, v: Selector) -> Response:
    return json_view(service.get_version(caller.reg, version_ref(ns, name, v)))


@router.put("/{ns}/{name}/aliases/{alias}", response_model=VersionView)
def set_alias(caller: SignedIn, ns: Namespace, name: Name, alias: AliasName, body: AliasIn) -> VersionView:
    """Point `alias` at a version (creates or moves it): a writer of the namespace, a maintainer for a
    protected alias. The move is an audit event naming the principal."""
    validate_name(f"{ns}/{name}", "name")
    return service.set_alias(caller.reg, Ref(ns, name, version=body.version), alias)


@router.get(VERSION + "/lineage", response_model=LineageGraph)
@catalog_read
def lineage(
    caller: Reader,
    ns: Namespace,
    name: Name,
    v: Selector,
    direction: Literal["up", "down"] = "up",
    depth: Annotated[int, Query(ge=1, le=MAX_DEPTH)] = 10,
) -> Response:
    """Ancestors (`up`) or descendants (`down`): nodes with their depth, edges with operator and weight."""
    graph = service.lineage(caller.reg, version_ref(ns, name, v), direction=direction, depth=depth)
    return json_view(graph)


@router.get(VERSION + "/serving", response_model=ServingRefs)
def serving(
    caller: Reader,
    request: Request,
    ns: Namespace,
    name: Name,
    v: Selector,
    dir: Annotated[
        str, Query(pattern=r"^/[^\x00-\x1f\x7f]{0,1023}$", description="the serving host's pull folder")
    ] = DEFAULT_DIR,
    expires: Annotated[int, Query(ge=60, le=7 * 24 * 3600, description="presigned URL lifetime, s")] = 3600,
) -> ServingRefs:
    """vLLM and LoRAX references, pinned by digest (they keep naming these bytes if an alias moves):
    each file's URL (presigned on S3, else this API's download route), the base model's source, and
    the folder `pemreg adapters pull` lays the version out in under `dir` on the serving host."""
    ref = version_ref(ns, name, v)
    return serving_refs(caller.reg, ref, link=route_link(request), pull_dir=dir, expires=expires)
