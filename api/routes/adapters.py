"""Catalog reads and alias moves: /v1/adapters/..."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from api.deps import Caller, Reader, Writer
from api.errors import ERROR_RESPONSES
from api.schemas import AliasIn
from registry import service
from registry.errors import InvalidInput, NotFound
from registry.refs import Ref, validate_name
from registry.service.lineage import MAX_DEPTH
from registry.service.queries import MAX_LIMIT
from registry.service.serving import ServingRefs, serving_refs
from registry.service.views import AdapterView, LineageGraph, Page, VersionView

from .common import AliasName, Name, Namespace, Selector, TagFilter, parse_tag_filters, version_ref

router = APIRouter(prefix="/v1/adapters", tags=["adapters"], responses=ERROR_RESPONSES)
VERSION = "/{ns}/{name}/versions/{v}"


@router.get("", response_model=Page[AdapterView])
def list_adapters(
    caller: Reader,
    base_model: Annotated[str | None, Query(description="NAME or NAME@REVISION")] = None,
    pem_type: Annotated[str | None, Query(description="lora | ia3")] = None,
    task: str | None = None,
    tag: TagFilter = [],  # noqa: B006
    q: Annotated[str | None, Query(description="text in name, task or description")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    page_token: Annotated[
        str | None,
        Query(
            description="next_page_token of the previous page",
            json_schema_extra={"pattern": "^[A-Za-z0-9_-]{0,1024}$"},
        ),
    ] = None,
    include_archived: Annotated[
        bool, Query(description="also adapters whose versions are all archived")
    ] = False,
) -> Page[AdapterView]:
    try:
        return _list(caller, base_model, pem_type, task, tag, q, limit, page_token, include_archived)
    except InvalidInput as exc:
        if exc.field != "page_token":
            raise
        # A well-formed token that names no position: like an unknown object, not a malformed request.
        raise PageNotFound(str(exc)) from None


class PageNotFound(NotFound):
    field = "page_token"


def _list(
    caller: Caller,
    base_model: str | None,
    pem_type: str | None,
    task: str | None,
    tag: list[str],
    q: str | None,
    limit: int,
    page_token: str | None,
    include_archived: bool,
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
def set_alias(caller: Writer, ns: Namespace, name: Name, alias: AliasName, body: AliasIn) -> VersionView:
    """Point `alias` at a version (creates or moves it); the move is an audit event naming the key."""
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
