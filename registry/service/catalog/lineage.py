"""Lineage walks: one recursive CTE (PostgreSQL and SQLite alike) up to ancestors or down to descendants."""

from __future__ import annotations

from sqlalchemy import literal, select
from sqlalchemy.orm import Session, aliased

from registry.catalog import models as m
from registry.errors import InvalidInput
from registry.refs import Ref
from registry.service.catalog.resolve import resolve_version
from registry.service.context import Registry
from registry.views import LineageEdgeView, LineageGraph, LineageNode

MAX_DEPTH = 100


def _label(name: str, version: int) -> str:
    return f"{name}@{version}"


def walk(session: Session, root: m.AdapterVersion, direction: str, depth: int) -> LineageGraph:
    if direction not in ("up", "down"):
        raise InvalidInput("direction: must be 'up' or 'down'", field="direction")
    if not 1 <= depth <= MAX_DEPTH:
        raise InvalidInput(f"depth: must be between 1 and {MAX_DEPTH}", field="depth")
    e = m.LineageEdge
    near, far = (
        (e.child_version_id, e.parent_version_id)
        if direction == "up"
        else (e.parent_version_id, e.child_version_id)
    )
    frontier = (
        select(far.label("vid"), literal(1).label("depth")).where(near == root.id).cte("walk", recursive=True)
    )
    step = aliased(m.LineageEdge)
    step_near, step_far = (
        (step.child_version_id, step.parent_version_id)
        if direction == "up"
        else (step.parent_version_id, step.child_version_id)
    )
    # UNION, not UNION ALL: it drops repeated (version, depth) rows, so a DAG whose nodes have several
    # parents yields one row per node and level instead of one per path (2^10 paths at depth 10).
    frontier = frontier.union(
        select(step_far, frontier.c.depth + 1)
        .join(frontier, step_near == frontier.c.vid)
        .where(frontier.c.depth < depth)
    )
    # A DAG may reach one node by several paths: keep its shallowest depth.
    reached: dict[int, int] = {}
    for vid, d in session.execute(select(frontier.c.vid, frontier.c.depth)).all():
        reached[vid] = min(d, reached.get(vid, d))
    ids = set(reached) | {root.id}
    rows = session.execute(
        select(
            m.AdapterVersion.id,
            m.Adapter.namespace,
            m.Adapter.name,
            m.AdapterVersion.version,
            m.AdapterVersion.sha256,
            m.AdapterVersion.status,
        )
        .join(m.Adapter, m.Adapter.id == m.AdapterVersion.adapter_id)
        .where(m.AdapterVersion.id.in_(ids))
    ).all()
    labels = {vid: _label(f"{ns}/{name}", ver) for vid, ns, name, ver, _, _ in rows}
    nodes = [
        LineageNode(name=f"{ns}/{name}", version=ver, sha256=sha, depth=reached.get(vid, 0), status=status)
        for vid, ns, name, ver, sha, status in rows
    ]
    nodes.sort(key=lambda n: (n.depth, n.name, n.version))
    edge_rows = session.scalars(
        select(m.LineageEdge).where(
            m.LineageEdge.parent_version_id.in_(ids), m.LineageEdge.child_version_id.in_(ids)
        )
    ).all()
    edges = [
        LineageEdgeView(
            parent=labels[r.parent_version_id],
            child=labels[r.child_version_id],
            operator=r.operator,
            weight=r.weight,
            composition_id=r.composition_id,
        )
        for r in edge_rows
    ]
    edges.sort(key=lambda ev: (ev.child, ev.parent))
    return LineageGraph(root=labels[root.id], direction=direction, nodes=nodes, edges=edges)


def lineage(reg: Registry, ref: Ref | str, *, direction: str = "up", depth: int = 10) -> LineageGraph:
    """A deleted version is still in the graph (and can be its root by number or digest): its node
    keeps the digest and says `status: deleted`."""
    with reg.sessions() as session:
        return walk(session, resolve_version(session, ref, include_deleted=True), direction, depth)
