"""Lineage walks: one recursive CTE (PostgreSQL and SQLite alike) up to ancestors or down to descendants.
Core over registry.catalog.tables: the CLI's `pemreg lineage` imports no ORM."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Protocol

from sqlalchemy import (
    BigInteger,
    CompoundSelect,
    Integer,
    bindparam,
    false,
    literal,
    null,
    select,
    true,
    type_coerce,
    union_all,
)

from registry.catalog import tables as t
from registry.catalog.records import records
from registry.errors import InvalidInput
from registry.refs import Ref
from registry.service.access.identity import Access
from registry.service.access.policy import bound, readable_bound
from registry.service.catalog.resolve import resolve_row
from registry.service.catalog.source import CatalogSource
from registry.views import LineageEdgeView, LineageGraph, LineageNode

MAX_DEPTH = 100
_e, _v, _a = t.lineage_edges.c, t.adapter_versions.c, t.adapters.c
_STEP = t.lineage_edges.alias("step").c
_VIA, _OWNER = t.adapter_versions.alias("via"), t.adapters.alias("owner")


class Version(Protocol):  # an ORM AdapterVersion or a Core row of adapter_versions
    @property
    def id(self) -> int: ...


@lru_cache(maxsize=8)
def _walk_statement(direction: str, admin: bool) -> CompoundSelect:
    """The walk from the bound `root` down to the bound `depth`, with the edges among the versions it
    reached, in one statement (one round trip: under load each round trip queues again for the CPU).
    Built once per direction and kind of reader: a recursive CTE costs more CPU to build and hash
    (SQLAlchemy's cache key) than PostgreSQL spends running it. Readers that are not admins bind their
    subjects (policy.bound). Rows are nodes (`edge` false: a version reached at a depth) or edges."""
    near, far = (
        (_e.child_version_id, _e.parent_version_id)
        if direction == "up"
        else (_e.parent_version_id, _e.child_version_id)
    )
    root = bindparam("root", type_=BigInteger)
    frontier = (
        select(far.label("vid"), literal(1).label("depth")).where(near == root).cte("walk", recursive=True)
    )
    step_near, step_far = (
        (_STEP.child_version_id, _STEP.parent_version_id)
        if direction == "up"
        else (_STEP.parent_version_id, _STEP.child_version_id)
    )
    # UNION, not UNION ALL: it drops repeated (version, depth) rows, so a DAG whose nodes have several
    # parents yields one row per node and level instead of one per path (2^10 paths at depth 10).
    recursive = (
        select(step_far, frontier.c.depth + 1)
        .join(frontier, step_near == frontier.c.vid)
        .where(frontier.c.depth < bindparam("depth", type_=Integer))
    )
    if not admin:  # go on only from nodes the caller may see
        recursive = (
            recursive.join(_VIA, _VIA.c.id == frontier.c.vid)
            .join(_OWNER, _OWNER.c.id == _VIA.c.adapter_id)
            .where(readable_bound(admin, _OWNER.c.namespace))
        )
    frontier = frontier.union(recursive)
    # The reached versions (and the root, depth 0), named once for both halves below.
    reached = union_all(select(frontier.c.vid, frontier.c.depth), select(root, literal(0))).cte("reached")
    edge_columns = (_e.parent_version_id, _e.child_version_id, _e.operator, _e.weight, _e.composition_id)
    node_columns = (
        _v.id,
        _a.namespace,
        _a.name,
        _v.version,
        _v.sha256,
        _v.status,
        readable_bound(admin, _a.namespace).label("visible"),
        reached.c.depth,
    )
    nodes = select(
        false().label("edge"),
        *node_columns,
        *(type_coerce(null(), c.type).label(c.name) for c in edge_columns),
    ).select_from(
        reached.join(t.adapter_versions, _v.id == reached.c.vid).join(t.adapters, _a.id == _v.adapter_id)
    )
    among = select(reached.c.vid).scalar_subquery()
    edges = select(true(), *(null() for _ in node_columns), *edge_columns).where(
        _e.parent_version_id.in_(among), _e.child_version_id.in_(among)
    )
    return union_all(nodes, edges)


def walk(db: Any, root: Version, direction: str, depth: int, access: Access) -> LineageGraph:
    """The graph around `root` as `access` sees it: a version in a namespace it cannot read is a node
    with its digest only (`hidden`), and the walk does not go on past it (its own parents or children
    are its namespace's business). Visibility is decided inside the recursive query. `db` is a Core
    Connection or an ORM Session."""
    if direction not in ("up", "down"):
        raise InvalidInput("direction: must be 'up' or 'down'", field="direction")
    if not 1 <= depth <= MAX_DEPTH:
        raise InvalidInput(f"depth: must be between 1 and {MAX_DEPTH}", field="depth")
    params = {"root": root.id, "depth": depth, **bound(access)}
    rows = records(db.execute(_walk_statement(direction, access.is_admin), params))
    # A DAG may reach one node by several paths (a row per depth): keep its shallowest depth.
    shallowest: dict[int, Any] = {}
    edge_rows = []
    for row in rows:
        if row.edge:
            edge_rows.append(row)
        elif row.id not in shallowest or row.depth < shallowest[row.id].depth:
            shallowest[row.id] = row
    nodes_by_id = {
        vid: LineageNode(name=f"{ns}/{name}", version=ver, sha256=sha, depth=depth, status=status)
        if visible or vid == root.id
        else LineageNode(name=None, version=None, sha256=sha, depth=depth, status=None, hidden=True)
        for _, vid, ns, name, ver, sha, status, visible, depth, *_edge in shallowest.values()
    }
    nodes = sorted(
        nodes_by_id.values(), key=lambda n: (n.depth, n.hidden, n.name or "", n.version or 0, n.sha256)
    )
    edges = []
    for r in edge_rows:
        parent, child = nodes_by_id[r.parent_version_id], nodes_by_id[r.child_version_id]
        if parent.hidden and child.hidden:
            continue  # between two hidden versions: their namespaces' business
        # An edge into a hidden version is part of how that version was made: its recipe stays hidden.
        secret = child.hidden
        edges.append(
            LineageEdgeView(
                parent=parent.label,
                child=child.label,
                operator=None if secret else r.operator,
                weight=None if secret else r.weight,
                composition_id=None if secret else r.composition_id,
            )
        )
    edges.sort(key=lambda ev: (ev.child, ev.parent))
    return LineageGraph(root=nodes_by_id[root.id].label, direction=direction, nodes=nodes, edges=edges)


def lineage(reg: CatalogSource, ref: Ref | str, *, direction: str = "up", depth: int = 10) -> LineageGraph:
    """A deleted version is still in the graph (and can be its root by number or digest): its node
    keeps the digest and says `status: deleted`."""
    with reg.connect() as db:
        root = resolve_row(db, ref, access=reg.acting, include_deleted=True)
        return walk(db, root, direction, depth, reg.acting)
