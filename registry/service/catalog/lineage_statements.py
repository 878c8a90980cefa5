"""The lineage walk's statement (registry.service.catalog.lineage): Core over registry.catalog.tables,
built on the server and compiled for the CLI's local reads (registry.catalog.prepared)."""

from __future__ import annotations

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
from registry.service.access.policy import readable_bound

_e, _v, _a = t.lineage_edges.c, t.adapter_versions.c, t.adapters.c
_STEP = t.lineage_edges.alias("step").c
_VIA, _OWNER = t.adapter_versions.alias("via"), t.adapters.alias("owner")


def walk(shape: tuple[str, bool]) -> CompoundSelect:
    """The walk from the bound `root` down to the bound `depth`, with the edges among the versions it
    reached, in one statement (one round trip: under load each round trip queues again for the CPU).
    Built once per direction and kind of reader: a recursive CTE costs more CPU to build and hash
    (SQLAlchemy's cache key) than PostgreSQL spends running it. Readers that are not admins bind their
    subjects (policy.bound). Rows are nodes (`edge` false: a version reached at a depth) or edges.
    `shape` is (direction, admin)."""
    direction, admin = shape
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
