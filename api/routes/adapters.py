"""Catalog reads and alias moves: /v1/adapters/..."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from api.deps import Reader, SignedIn
from api.errors import ERROR_RESPONSES
from api.schemas import AliasIn
from registry import service
from registry.refs import Ref, validate_name
from registry.service.catalog.lineage import MAX_DEPTH
from registry.service.catalog.queries import MAX_LIMIT
from registry.service.catalog.serving import ServingRefs, serving_refs
from registry.views import AdapterView, LineageGraph, Page, VersionView

from .common import (
    VERSION,
    AliasName,
    Name,
    Namespace,
    PageToken,
    Selector,
    TagFilter,
    parse_tag_filters,
    version_ref,
)

router = APIRouter(prefix="/v1/adapters", tags=["adapters"], responses=ERROR_RESPONSES)


@router.get("", response_model=Page[AdapterView])
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
) -> Page[AdapterView]:
    return service.list_adapters(
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
    )


@router.get("/{ns}/{name}", response_model=AdapterView)
def show_adapter(
    caller: Reader,
    ns: Namespace,
    name: Name,
    include_archived: Annotated[bool, Query(description="also archived and deleted versions")] = False,
) -> AdapterView:
    validate_name(f"{ns}/{name}", "name")
    return service.show_adapter(caller.reg, f"{ns}/{name}", include_archived=include_archived)


@router.get(VERSION, response_model=VersionView)
def get_version(caller: Reader, ns: Namespace, name: Name, v: Selector) -> VersionView:
    return service.get_version(caller.reg, version_ref(ns, name, v))


@router.put("/{ns}/{name}/aliases/{alias}", response_model=VersionView)
def set_alias(caller: SignedIn, ns: Namespace, name: Name, alias: AliasName, body: AliasIn) -> VersionView:
    """Point `alias` at a version (creates or moves it): a writer of the namespace, a maintainer for a
    protected alias. The move is an audit event naming the principal."""
    validate_name(f"{ns}/{name}", "name")
    return service.set_alias(caller.reg, Ref(ns, name, version=body.version), alias)


@router.get(VERSION + "/lineage", response_model=LineageGraph)
def lineage(
    caller: Reader,
    ns: Namespace,
    name: Name,
    v: Selector,
    direction: Literal["up", "down"] = "up",
    depth: Annotated[int, Query(ge=1, le=MAX_DEPTH)] = 10,
) -> LineageGraph:
    """Ancestors (`up`) or descendants (`down`): nodes with their depth, edges with operator and weight."""
    return service.lineage(caller.reg, version_ref(ns, name, v), direction=direction, depth=depth)


@router.get(VERSION + "/serving", response_model=ServingRefs)
def serving(caller: Reader, ns: Namespace, name: Name, v: Selector) -> ServingRefs:
    """vLLM and LoRAX references, pinned by digest (they keep naming these bytes if an alias moves)."""
    return serving_refs(caller.reg, version_ref(ns, name, v))
