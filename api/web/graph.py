"""Layered layout of a lineage DAG for an SVG: parents left of children, computed here, no JS.

Columns by longest path from the sources (every edge points right), order within a column by a few
barycenter sweeps (fewer crossings), then fixed-size boxes and cubic edges with their labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from registry.views import LineageGraph

NODE_W, NODE_H = 236, 44
COL_GAP, ROW_GAP = 150, 18
PAD = 20
SWEEPS = 4


@dataclass
class Node:
    label: str  # name@version, or sha256:<hex> for a version the reader may not see
    name: str | None
    version: int | None
    sha256: str
    root: bool
    x: float = 0.0
    y: float = 0.0

    @property
    def hidden(self) -> bool:
        return self.name is None

    @property
    def href(self) -> str | None:
        return None if self.hidden else f"/adapters/{self.name}/versions/{self.version}"

    @property
    def short_name(self) -> str:
        name = self.name or "hidden"
        return name if len(name) <= 32 else name[:31] + "…"


@dataclass
class Edge:
    parent: str
    child: str
    operator: str | None  # None on an edge into a hidden version
    weight: float | None
    path: str = ""
    label_x: float = 0.0
    label_y: float = 0.0

    @property
    def text(self) -> str:
        return "" if self.operator is None or self.weight is None else f"{self.operator} {self.weight:+g}"

    @property
    def negative(self) -> bool:
        return self.weight is not None and self.weight < 0


@dataclass
class Layout:
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    width: float = 0.0
    height: float = 0.0
    node_w: int = NODE_W
    node_h: int = NODE_H


def _ranks(labels: list[str], edges: list[Edge]) -> dict[str, int]:
    parents: dict[str, list[str]] = {n: [] for n in labels}
    for e in edges:
        parents[e.child].append(e.parent)
    rank: dict[str, int] = {}

    def visit(n: str, seen: frozenset[str]) -> int:
        if n not in rank:
            # The catalog's lineage is a DAG; `seen` only guards the layout against a corrupt cycle.
            rank[n] = 1 + max((visit(p, seen | {n}) for p in parents[n] if p not in seen), default=-1)
        return rank[n]

    for n in labels:
        visit(n, frozenset())
    return rank


def _order(columns: list[list[str]], edges: list[Edge]) -> None:
    nbrs: dict[str, list[str]] = {}
    for e in edges:
        nbrs.setdefault(e.child, []).append(e.parent)
        nbrs.setdefault(e.parent, []).append(e.child)
    for sweep in range(SWEEPS):
        order = range(1, len(columns)) if sweep % 2 == 0 else range(len(columns) - 2, -1, -1)
        for c in order:
            ref = columns[c - 1] if sweep % 2 == 0 else columns[c + 1]
            pos = {n: i for i, n in enumerate(ref)}

            def center(n: str, current: int, pos: dict[str, int] = pos) -> float:
                near = [pos[m] for m in nbrs.get(n, []) if m in pos]
                return sum(near) / len(near) if near else float(current)

            columns[c] = [n for _, n in sorted((center(n, i), n) for i, n in enumerate(columns[c]))]


def layout(root: str, *graphs: LineageGraph) -> Layout:
    """One picture of several walks from `root` (ancestors and descendants), nodes and edges merged."""
    nodes: dict[str, Node] = {}
    edges: dict[tuple[str, str], Edge] = {}
    for g in graphs:
        for gn in g.nodes:
            nodes.setdefault(gn.label, Node(gn.label, gn.name, gn.version, gn.sha256, gn.label == root))
        for ge in g.edges:
            edges.setdefault((ge.parent, ge.child), Edge(ge.parent, ge.child, ge.operator, ge.weight))
    edge_list = [e for e in edges.values() if e.parent in nodes and e.child in nodes]
    labels = sorted(nodes)
    rank = _ranks(labels, edge_list)
    columns: list[list[str]] = [[] for _ in range(max(rank.values(), default=0) + 1)]
    for n in labels:
        columns[rank[n]].append(n)
    _order(columns, edge_list)
    tallest = max((len(c) for c in columns), default=1)
    height = tallest * NODE_H + (tallest - 1) * ROW_GAP
    for c, column in enumerate(columns):
        top = PAD + (height - (len(column) * NODE_H + (len(column) - 1) * ROW_GAP)) / 2
        for i, n in enumerate(column):
            nodes[n].x = PAD + c * (NODE_W + COL_GAP)
            nodes[n].y = top + i * (NODE_H + ROW_GAP)
    for e in edge_list:
        p, ch = nodes[e.parent], nodes[e.child]
        x1, y1 = p.x + NODE_W, p.y + NODE_H / 2
        x2, y2 = ch.x, ch.y + NODE_H / 2
        bend = max((x2 - x1) / 2, 40)
        e.path = f"M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} {x2 - bend:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
        # The label sits mid-edge, where the edges into one child (or out of one parent) are furthest apart.
        t = 0.5
        e.label_x = (
            (1 - t) ** 3 * x1
            + 3 * (1 - t) ** 2 * t * (x1 + bend)
            + 3 * (1 - t) * t**2 * (x2 - bend)
            + t**3 * x2
        )
        e.label_y = (1 - t) ** 3 * y1 + 3 * (1 - t) ** 2 * t * y1 + 3 * (1 - t) * t**2 * y2 + t**3 * y2
    width = PAD * 2 + len(columns) * NODE_W + max(len(columns) - 1, 0) * COL_GAP
    return Layout(
        nodes=[nodes[n] for n in labels],
        edges=sorted(edge_list, key=lambda e: (e.child, e.parent)),
        width=width,
        height=height + PAD * 2,
    )
