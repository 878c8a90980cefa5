"""Helpers shared by routes: version refs from path segments, tag filters from query strings."""

from __future__ import annotations

from registry.errors import InvalidInput
from registry.refs import Ref, parse_selector, validate_name


def version_ref(ns: str, name: str, v: str = "latest") -> Ref:
    """`/adapters/{ns}/{name}/versions/{v}`: v is a number, an alias, `latest` or `sha256:prefix`."""
    validate_name(f"{ns}/{name}", "name")
    return Ref(ns, name, **parse_selector(v, "version"))  # type: ignore[arg-type]


def parse_tag_filters(items: list[str]) -> dict[str, str]:
    """`tag=k:v` as docs/rest.md writes it; `k=v` (the CLI's form) works too. Splits at the first of them."""
    tags: dict[str, str] = {}
    for item in items:
        cut = min((i for i in (item.find(":"), item.find("=")) if i > 0), default=-1)
        if cut < 0:
            raise InvalidInput(f"tag: {item!r} is not key:value", field="tag")
        tags[item[:cut].strip()] = item[cut + 1 :].strip()
    return tags
