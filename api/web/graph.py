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
PORT_STEP, PORT_MARGIN = 8.0, 6.0  # edges of one node meet its box this far apart
LABEL_TS = tuple(0.5 + d * k / 20 for k in range(9) for d in ((1, -1) if k else (1,)))  # 0.1 .. 0.9
SAMPLES = 24  # points per edge when measuring how far a label is from the other edges
CLEAR_ENOUGH = 40.0  # px: a label this far from every other edge is unambiguous
LABEL_CELL = 160.0  # px: wider than any two half labels, so touching labels are in adjacent cells
LABEL_H, CHAR_W = 14.0, 6.6  # a label's line height and mean character width (11.5 px font)


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


def _bezier(p0: float, p1: float, p2: float, p3: float, t: float) -> float:
    return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3


def _ports(edges: list[Edge], nodes: dict[str, Node], end: str) -> dict[tuple[str, str], float]:
    """Where each edge meets a box: the edges of one node spread over its height, in the order of
    the nodes at their other end, so edges out of one parent (or into one child) never coincide."""
    groups: dict[str, list[Edge]] = {}
    for e in edges:
        groups.setdefault(getattr(e, end), []).append(e)
    ports = {}
    for label, group in groups.items():
        other = "child" if end == "parent" else "parent"
        group.sort(key=lambda e: (nodes[getattr(e, other)].y, getattr(e, other)))
        step = min(PORT_STEP, (NODE_H - 2 * PORT_MARGIN) / max(len(group) - 1, 1))
        middle = nodes[label].y + NODE_H / 2
        for i, e in enumerate(group):
            ports[(e.parent, e.child)] = middle + (i - (len(group) - 1) / 2) * step
    return ports


def _route(edges: list[Edge], nodes: dict[str, Node]) -> None:
    """Paths and label positions. Each label sits at the point of its edge farthest from every other
    edge (of a few along it), so six children of one node, or a child with several parents, get labels
    a reader can match to their edges, and never where it would touch a label placed before it."""
    out_ports, in_ports = _ports(edges, nodes, "parent"), _ports(edges, nodes, "child")
    geometry: dict[int, tuple[float, float, float, float, float, float, float, float]] = {}
    for e in edges:
        p, ch = nodes[e.parent], nodes[e.child]
        x1, y1 = p.x + NODE_W, out_ports[(e.parent, e.child)]
        x2, y2 = ch.x, in_ports[(e.parent, e.child)]
        bend = max((x2 - x1) / 2, 40)
        e.path = f"M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} {x2 - bend:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
        geometry[id(e)] = (x1, x1 + bend, x2 - bend, x2, y1, y1, y2, y2)
    # Sampled points of every edge in a grid of CLEAR_ENOUGH-sized cells: a label's clearance looks
    # only at the 3x3 cells around it, and placed labels are kept in a grid too (linear, not quadratic).
    points: dict[tuple[int, int], list[tuple[int, float, float]]] = {}
    for e in edges:
        g = geometry[id(e)]
        for i in range(SAMPLES + 1):
            x, y = _bezier(*g[:4], i / SAMPLES), _bezier(*g[4:], i / SAMPLES)
            points.setdefault(_cell(x, y, CLEAR_ENOUGH), []).append((id(e), x, y))
    labels: dict[tuple[int, int], list[Edge]] = {}

    def score(e: Edge, x: float, y: float) -> float:
        """Higher is better: far from every other edge, touching no label placed before."""
        cx, cy = _cell(x, y, CLEAR_ENOUGH)
        best = CLEAR_ENOUGH
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for owner, px, py in points.get((cx + dx, cy + dy), ()):
                    if owner != id(e):
                        best = min(best, ((px - x) ** 2 + (py - y) ** 2) ** 0.5)
        lx, ly = _cell(x, y, LABEL_CELL)
        touching = sum(
            _overlap(e, (x, y), other)
            for dx in (-1, 0, 1)
            for dy in (-1, 0, 1)
            for other in labels.get((lx + dx, ly + dy), ())
        )
        return best - 1000.0 * touching

    for e in sorted(edges, key=lambda e: (e.parent, e.child)):
        g = geometry[id(e)]
        best_score, best_pt = -float("inf"), (0.0, 0.0)
        for t in LABEL_TS:  # from the middle outwards; the first point clear of everything wins
            pt = (_bezier(*g[:4], t), _bezier(*g[4:], t))
            found = score(e, *pt)
            if found > best_score:
                best_score, best_pt = found, pt
            if found >= CLEAR_ENOUGH:
                break
        e.label_x, e.label_y = best_pt
        labels.setdefault(_cell(*best_pt, LABEL_CELL), []).append(e)


def _cell(x: float, y: float, size: float) -> tuple[int, int]:
    return int(x // size), int(y // size)


def _overlap(e: Edge, pt: tuple[float, float], other: Edge) -> bool:
    """Would `e`'s label at `pt` touch `other`'s placed label?"""
    return (
        abs(other.label_x - pt[0]) < (_text_w(other) + _text_w(e)) / 2
        and abs(other.label_y - pt[1]) < LABEL_H
    )


def _text_w(e: Edge) -> float:
    return CHAR_W * len(e.text) + 6


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
    _route(edge_list, nodes)
    width = PAD * 2 + len(columns) * NODE_W + max(len(columns) - 1, 0) * COL_GAP
    return Layout(
        nodes=[nodes[n] for n in labels],
        edges=sorted(edge_list, key=lambda e: (e.child, e.parent)),
        width=width,
        height=height + PAD * 2,
    )
