"""Recompose cycles: specs with `recompose: on_parent_update` that follow each other's outputs.

`a` follows `b@latest` and `b` follows `a@latest`: each recomposition of one moves the other's input,
so without a check they would recompose each other forever, one new version per pass. The graph has an
edge input -> output for every stored spec that recomposes on parent updates and names that input by
`latest` or an alias (a pinned version or digest never moves). A spec closing a cycle is refused at
submission, and the recompose flow skips any stored spec on a cycle (one stored by an older version),
so one parent change causes at most one recomposition of each descendant.
"""

from __future__ import annotations

from typing import Any

from registry.errors import InvalidInput
from registry.refs import Ref
from registry.service.compositions.stored import newest_specs
from registry.service.context import Registry
from registry.spec import CompositionSpec

RECOMPOSE = "on_parent_update"


def _followed(spec: CompositionSpec) -> set[str]:
    """Names of the inputs a recomposing spec follows (referenced by `latest` or an alias)."""
    if spec.recompose != RECOMPOSE:
        return set()
    refs: list[Ref] = [ref for ref, _ in spec.weighted_refs()]
    return {r.full_name for r in refs if r.version is None and r.sha256_prefix is None}


def _graph(reg: Registry, replacing: CompositionSpec | None = None) -> dict[str, set[str]]:
    """input name -> names of the recomposing outputs that follow it."""
    specs: dict[str, Any] = {name: stored.spec for name, stored in newest_specs(reg).items()}
    followers: dict[str, set[str]] = {}
    parsed: dict[str, CompositionSpec] = {}
    for name, raw in specs.items():
        if raw.get("recompose") != RECOMPOSE:
            continue
        try:
            parsed[name] = CompositionSpec.model_validate(raw)
        except ValueError:  # a stored spec this version no longer accepts never recomposes
            continue
    if replacing is not None:
        parsed[replacing.name] = replacing
    for name, spec in parsed.items():
        for parent in _followed(spec):
            followers.setdefault(parent, set()).add(name)
    return followers


def _path(followers: dict[str, set[str]], start: str, goal: str) -> list[str] | None:
    """A path start -> ... -> goal along follower edges (depth-first, each node once)."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for nxt in sorted(followers.get(node, ())):
            if nxt == goal:
                return [*path, nxt]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def cycle_through(reg: Registry, spec: CompositionSpec, *, stored: bool = False) -> list[str] | None:
    """The names on a recompose cycle through `spec`'s output, or None. `stored`: check the catalog as
    it is (the spec is already stored) instead of with `spec` replacing its name's stored spec."""
    if spec.recompose != RECOMPOSE:
        return None
    followers = _graph(reg, None if stored else spec)
    return _path(followers, spec.name, spec.name)


def check_no_cycle(reg: Registry, spec: CompositionSpec) -> None:
    cycle = cycle_through(reg, spec)
    if cycle is not None:
        raise InvalidInput(
            "recompose: on_parent_update would recompose in a cycle ("
            + " -> ".join(cycle)
            + "): each new version would move the other's input forever; pin one input to a version",
            field="recompose",
        )
