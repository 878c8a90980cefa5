"""Lineage walks: one recursive CTE (PostgreSQL and SQLite alike) up to ancestors or down to descendants.
Core over registry.catalog.tables: the CLI's `pemreg lineage` imports no ORM."""

from __future__ import annotations

from typing import Any, Protocol

from registry.catalog.prepared.statement import ReadConnection, ReadStatement
from registry.errors import InvalidInput
from registry.refs import Ref
from registry.service.access.identity import Access
from registry.service.access.standing import bound
from registry.service.catalog.resolve import resolve_row
from registry.service.catalog.source import CatalogSource
from registry.views import LineageEdgeView, LineageGraph, LineageNode

MAX_DEPTH = 100
WALK = ReadStatement("registry.service.catalog.lineage_statements:walk")


class Version(Protocol):  # an ORM AdapterVersion or a Core row of adapter_versions
    @property
    def id(self) -> int: ...


def walk(db: ReadConnection, root: Version, direction: str, depth: int, access: Access) -> LineageGraph:
    """The graph around `root` as `access` sees it: a version in a namespace it cannot read is a node
    with its digest only (`hidden`), and the walk does not go on past it (its own parents or children
    are its namespace's business). Visibility is decided inside the recursive query (an ORM session's
    reads: CoreReads(session))."""
    if direction not in ("up", "down"):
        raise InvalidInput("direction: must be 'up' or 'down'", field="direction")
    if not 1 <= depth <= MAX_DEPTH:
        raise InvalidInput(f"depth: must be between 1 and {MAX_DEPTH}", field="depth")
    params = {"root": root.id, "depth": depth, **bound(access)}
    rows = db.rows(WALK, (direction, access.is_admin), params)
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
    with reg.reading() as db:
        root = resolve_row(db, ref, access=reg.acting, include_deleted=True)
        return walk(db, root, direction, depth, reg.acting)
