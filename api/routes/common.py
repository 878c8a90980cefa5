"""Helpers shared by routes: version refs from path segments, tag filters from query strings."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from starlette.convertors import StringConvertor, register_url_convertor

from registry.refs import (
    ALIAS_SCHEMA_PATTERN,
    NAME_PART_SCHEMA_PATTERN,
    NAMED_VERSION_SCHEMA_PATTERN,
    NAMESPACE_SCHEMA_PATTERN,
    SELECTOR_SCHEMA_PATTERN,
    SHA_PREFIX_MAX,
    SHA_PREFIX_MIN,
    TAG_FILTER_SCHEMA_PATTERN,
    Ref,
    parse_selector,
    validate_name,
)
from registry.service.catalog.paging import TOKEN_PATTERN


class SelectorConvertor(StringConvertor):
    """A version segment: no `:` except in `sha256:<hex>`. So `versions/1:archive` is never read as the
    version `1:archive` of GET/DELETE `versions/{v}`: it only matches the POST action route, and another
    method on it is a 405 naming the allowed one."""

    regex = r"sha256:[^/:]*|[^/:]+"


register_url_convertor("selector", SelectorConvertor())
VERSION = "/{ns}/{name}/versions/{v:selector}"


def _pattern(regex: str) -> dict[str, object]:
    # Declared in the OpenAPI document only: the route checks with re.fullmatch (registry.refs) and
    # answers 422 naming the field; pydantic's own check would answer with a different message.
    return {"pattern": regex}


SHA_HEX = f"{SHA_PREFIX_MIN}-{SHA_PREFIX_MAX}"
Namespace = Annotated[str, Path(json_schema_extra=_pattern(NAMESPACE_SCHEMA_PATTERN))]
Name = Annotated[str, Path(json_schema_extra=_pattern(NAME_PART_SCHEMA_PATTERN))]
Selector = Annotated[
    str,
    Path(
        description=f"a version number, an alias, `latest` or `sha256:<{SHA_HEX} hex>`",
        json_schema_extra=_pattern(SELECTOR_SCHEMA_PATTERN),
    ),
]
NamedVersion = Annotated[  # a DELETE names the version: `latest` (a moving target) is refused
    str,
    Path(
        description=f"a version number, an alias or `sha256:<{SHA_HEX} hex>` (not `latest`)",
        json_schema_extra=_pattern(NAMED_VERSION_SCHEMA_PATTERN),
    ),
]
AliasName = Annotated[
    str,
    Path(
        description="lowercase, starts with a letter; `latest` is implicit",
        json_schema_extra=_pattern(ALIAS_SCHEMA_PATTERN),
    ),
]
PageToken = Annotated[
    str | None,
    Query(description="next_page_token of the previous page", json_schema_extra=_pattern(TOKEN_PATTERN)),
]
TagFilter = Annotated[
    list[str],
    Query(
        description="key:value (or key=value), repeatable; all must match",
        json_schema_extra={"items": {"type": "string", "pattern": TAG_FILTER_SCHEMA_PATTERN}},
    ),
]


def version_ref(ns: str, name: str, v: str = "latest") -> Ref:
    """`/adapters/{ns}/{name}/versions/{v}`: v is a number, an alias, `latest` or `sha256:prefix`."""
    validate_name(f"{ns}/{name}", "name")
    return Ref(ns, name, **parse_selector(v, "version"))  # type: ignore[arg-type]
