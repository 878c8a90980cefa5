"""The server-side lineage layout: parents left of children, no two boxes overlap, labels on edges."""

from __future__ import annotations

import itertools

from api.web.graph import NODE_H, NODE_W, layout
from registry.views import LineageEdgeView, LineageGraph, LineageNode


def _chain_dag(levels: int, width: int) -> LineageGraph:
    """Like the catalog benchmark's chains: each node of level k has two parents on level k+1."""
    nodes = [
        LineageNode(name=f"t/a{k}", version=v, sha256=f"{k:02d}{v:02d}" * 16, depth=k)
        for k in range(levels)
        for v in range(1, width + 1)
    ]
    edges = []
    for k in range(levels - 1):
        for v in range(1, width + 1):
            for pv, w in ((v, 0.5), (v % width + 1, -0.25)):
                edges.append(
                    LineageEdgeView(
                        parent=f"t/a{k + 1}@{pv}",
                        child=f"t/a{k}@{v}",
                        operator="linear",
                        weight=w,
                        composition_id=None,
                    )
                )
    return LineageGraph(root="t/a0@1", direction="up", nodes=nodes, edges=edges)


def test_fifty_node_layout_is_layered_and_overlap_free() -> None:
    g = _chain_dag(levels=6, width=9)  # 54 nodes, 90 edges
    drawn = layout("t/a0@1", g)
    assert len(drawn.nodes) == 54 and len(drawn.edges) == 90
    at = {n.label: n for n in drawn.nodes}
    for e in drawn.edges:
        assert at[e.parent].x + NODE_W < at[e.child].x  # every edge points right
        assert e.path.startswith("M") and e.text in ("linear +0.5", "linear -0.25")
        assert min(at[e.parent].x, at[e.child].x) < e.label_x < max(at[e.parent].x + NODE_W, at[e.child].x)
    for a, b in itertools.combinations(drawn.nodes, 2):
        apart = abs(a.x - b.x) >= NODE_W or abs(a.y - b.y) >= NODE_H
        assert apart, (a.label, b.label)
    assert all(n.x >= 0 and n.x + NODE_W <= drawn.width and n.y + NODE_H <= drawn.height for n in drawn.nodes)
    assert [n.label for n in drawn.nodes if n.root] == ["t/a0@1"]


def test_up_and_down_walks_merge_around_the_root() -> None:
    up = LineageGraph(
        root="t/m@1",
        direction="up",
        nodes=[
            LineageNode(name="t/m", version=1, sha256="a" * 64, depth=0),
            LineageNode(name="t/p", version=1, sha256="b" * 64, depth=1),
        ],
        edges=[
            LineageEdgeView(parent="t/p@1", child="t/m@1", operator="ties", weight=1.0, composition_id=None)
        ],
    )
    down = LineageGraph(
        root="t/m@1",
        direction="down",
        nodes=[
            LineageNode(name="t/m", version=1, sha256="a" * 64, depth=0),
            LineageNode(name="t/c", version=2, sha256="c" * 64, depth=1),
        ],
        edges=[
            LineageEdgeView(
                parent="t/m@1", child="t/c@2", operator="linear", weight=-1.0, composition_id=None
            )
        ],
    )
    drawn = layout("t/m@1", up, down)
    x = {n.label: n.x for n in drawn.nodes}
    assert x["t/p@1"] < x["t/m@1"] < x["t/c@2"]
    assert sorted(e.text for e in drawn.edges) == ["linear -1", "ties +1"]
