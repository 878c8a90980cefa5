"""The server-side lineage layout: parents left of children, no two boxes overlap, labels on edges."""

from __future__ import annotations

import itertools

from api.web.graph import NODE_H, NODE_W, Edge, layout
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


def _curve(path: str, steps: int = 60) -> list[tuple[float, float]]:
    """Points along an SVG `M x,y C x,y x,y x,y` path (the layout's cubic edges)."""
    numbers = [float(v) for v in path.replace("M", " ").replace("C", " ").replace(",", " ").split()]
    (x0, y0, x1, y1, x2, y2, x3, y3) = numbers

    def at(t: float, a: float, b: float, c: float, d: float) -> float:
        return (1 - t) ** 3 * a + 3 * (1 - t) ** 2 * t * b + 3 * (1 - t) * t**2 * c + t**3 * d

    return [(at(i / steps, x0, x1, x2, x3), at(i / steps, y0, y1, y2, y3)) for i in range(steps + 1)]


def _star(children: int, parents: int) -> LineageGraph:
    """One node with `children` children, one of which also has `parents` parents in all."""
    nodes = [LineageNode(name="t/root", version=1, sha256="a" * 64, depth=0)]
    nodes += [LineageNode(name=f"t/c{i}", version=1, sha256="b" * 64, depth=1) for i in range(children)]
    nodes += [LineageNode(name=f"t/p{i}", version=1, sha256="c" * 64, depth=1) for i in range(parents - 1)]
    edges = [
        LineageEdgeView(
            parent="t/root@1", child=f"t/c{i}@1", operator="linear", weight=0.1 * (i + 1), composition_id=None
        )
        for i in range(children)
    ]
    edges += [
        LineageEdgeView(
            parent=f"t/p{i}@1", child="t/c0@1", operator="delta_svd", weight=-0.5 - i, composition_id=None
        )
        for i in range(parents - 1)
    ]
    return LineageGraph(root="t/root@1", direction="down", nodes=nodes, edges=edges)


def _crossed(e: Edge, curves: dict[tuple[str, str], list[tuple[float, float]]]) -> int:
    """How many other edges run through the label's text (drawn 4 px above its point, 11.5 px font)."""
    half = 3.3 * len(e.text)
    x0, x1, y0, y1 = e.label_x - half, e.label_x + half, e.label_y - 15, e.label_y - 1
    return sum(
        any(x0 <= x <= x1 and y0 <= y <= y1 for x, y in points)
        for key, points in curves.items()
        if key != (e.parent, e.child)
    )


def test_labels_of_six_children_can_be_matched_to_their_edges() -> None:
    """Each label lies on its own edge and clearly closer to it than to any other edge, no two labels
    overlap, and where one node fans out to its children no other edge runs through a label's text
    (at mid-edge, the old placement, edges into neighbouring children struck through it)."""
    for children, parents in ((6, 1), (3, 1), (6, 4)):
        drawn = layout("t/root@1", _star(children, parents))
        curves = {(e.parent, e.child): _curve(e.path, 200) for e in drawn.edges}
        for e in drawn.edges:

            def distance(points: list[tuple[float, float]], e: Edge = e) -> float:
                return min(((x - e.label_x) ** 2 + (y - e.label_y) ** 2) ** 0.5 for x, y in points)

            own = distance(curves[(e.parent, e.child)])
            nearest_other = min(distance(c) for k, c in curves.items() if k != (e.parent, e.child))
            assert own <= 8 and nearest_other >= own + 8, (e.text, own, nearest_other)
            if parents == 1:
                assert _crossed(e, curves) == 0, (children, e.text)
        boxes = [(e.label_x - 3.3 * len(e.text), e.label_y - 12, 6.6 * len(e.text), 14) for e in drawn.edges]
        for (ax, ay, aw, ah), (bx, by, bw, bh) in itertools.combinations(boxes, 2):
            assert ax + aw <= bx or bx + bw <= ax or ay + ah <= by or by + bh <= ay, (children, parents)
