"""Lineage walks (recursive CTE) up and down a DAG, with operators, weights and depth limits."""

from __future__ import annotations

from pathlib import Path

from registry import service
from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.service import Registry
from registry.service.catalog.resolve import resolve_version
from tests.factories import make_lora


def _edge(reg: Registry, parent: str, child: str, weight: float, op: str = "linear") -> None:
    with transaction(reg.sessions) as s:
        s.add(
            m.LineageEdge(
                parent_version_id=resolve_version(s, parent, access=reg.acting).id,
                child_version_id=resolve_version(s, child, access=reg.acting).id,
                operator=op,
                weight=weight,
            )
        )


def test_walk_up_and_down(reg: Registry, tmp_path: Path) -> None:
    # a, b -> ab ; ab, c -> abc ; a -> a2 (a DAG where `a` is reached by two paths from abc)
    for i, name in enumerate(["a", "b", "c", "ab", "abc"]):
        service.register_adapter(reg, make_lora(tmp_path / name, seed=100 + i), f"lab/{name}")
    _edge(reg, "lab/a@1", "lab/ab@1", 0.5)
    _edge(reg, "lab/b@1", "lab/ab@1", -0.5)
    _edge(reg, "lab/ab@1", "lab/abc@1", 1.0, "delta_svd")
    _edge(reg, "lab/c@1", "lab/abc@1", 1.0, "delta_svd")
    _edge(reg, "lab/a@1", "lab/abc@1", 0.25, "delta_svd")

    up = service.lineage(reg, "lab/abc@1", direction="up", depth=10)
    assert up.root == "lab/abc@1"
    depth = {f"{n.name}@{n.version}": n.depth for n in up.nodes}
    assert depth == {"lab/abc@1": 0, "lab/ab@1": 1, "lab/c@1": 1, "lab/a@1": 1, "lab/b@1": 2}
    edges = {(e.parent, e.child): (e.operator, e.weight) for e in up.edges}
    assert edges[("lab/b@1", "lab/ab@1")] == ("linear", -0.5)
    assert edges[("lab/ab@1", "lab/abc@1")] == ("delta_svd", 1.0)
    assert len(edges) == 5

    shallow = service.lineage(reg, "lab/abc@1", direction="up", depth=1)
    assert {n.name for n in shallow.nodes} == {"lab/abc", "lab/ab", "lab/c", "lab/a"}

    down = service.lineage(reg, "lab/a@1", direction="down", depth=10)
    assert {f"{n.name}@{n.version}" for n in down.nodes} == {"lab/a@1", "lab/ab@1", "lab/abc@1"}

    [match] = service.find_by_digest(reg, service.get_version(reg, "lab/abc@1").sha256)
    assert match.ancestry is not None and len(match.ancestry.edges) == 5
