"""`pemreg lineage` and `pemreg audit`: where a version came from, and what a file is."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .backend import backend
from .output import console, print_json

if TYPE_CHECKING:
    from rich.tree import Tree

    from registry.views import LineageEdgeView, LineageGraph


def _tree(graph: LineageGraph) -> Tree:
    """Render the DAG as a tree from the root; a node reached twice is printed under each parent.
    A deleted version stays in the tree, marked, with its digest; one in a namespace the caller cannot
    see is its digest only."""
    from rich.tree import Tree

    gone = {n.label: n.sha256 for n in graph.nodes if n.status == "deleted"}
    hidden = {n.label for n in graph.nodes if n.hidden}

    def label(node: str) -> str:
        if node in hidden:
            return f"(hidden) {node}"
        return f"{node} (deleted, sha256:{gone[node][:12]})" if node in gone else node

    follow: dict[str, list[tuple[str, LineageEdgeView]]] = {}
    for e in graph.edges:
        near, far = (e.child, e.parent) if graph.direction == "up" else (e.parent, e.child)
        follow.setdefault(near, []).append((far, e))
    root = Tree(label(graph.root), highlight=False)

    def grow(node: Tree, near: str, seen: frozenset[str]) -> None:
        for far, edge in sorted(follow.get(near, []), key=lambda pair: pair[0]):
            how = f"  ({edge.operator}, weight {edge.weight:+g})" if edge.weight is not None else ""
            branch = node.add(f"{label(far)}{how}")
            if far not in seen:
                grow(branch, far, seen | {far})

    grow(root, graph.root, frozenset({graph.root}))
    return root


def _dot(graph: LineageGraph) -> str:
    lines = ["digraph lineage {", "  rankdir=BT;"]
    lines += [
        f'  "{n.label}" [label="hidden\\n{n.sha256[:12]}"];'
        if n.hidden
        else f'  "{n.label}" [label="{n.label}\\n{n.sha256[:12]}"];'
        for n in graph.nodes
    ]
    lines += [
        f'  "{e.parent}" -> "{e.child}"'
        + (f' [label="{e.operator} {e.weight:+g}"];' if e.weight is not None else ";")
        for e in graph.edges
    ]
    return "\n".join(lines + ["}"])


def lineage(
    ref: Annotated[str, typer.Argument(help="ns/name[@N|@alias|@sha256:prefix]")],
    down: Annotated[bool, typer.Option("--down", help="descendants instead of ancestors")] = False,
    depth: Annotated[int, typer.Option("--depth", help="edges to follow from REF")] = 10,
    fmt: Annotated[str, typer.Option("--format", help="tree | json | dot")] = "tree",
) -> None:
    """Ancestors (default) or descendants of a version, with operator and weight on each edge."""
    if fmt not in ("tree", "json", "dot"):
        raise typer.BadParameter("must be tree, json or dot", param_hint="--format")
    graph = backend().lineage(ref, direction="down" if down else "up", depth=depth)
    if fmt == "json":
        print_json(graph)
    elif fmt == "dot":
        console.print(_dot(graph), markup=False)
    else:
        console.print(_tree(graph))


def audit(
    target: Annotated[str, typer.Argument(help="a file, or sha256:HEX (a unique prefix of 6+ digits works)")],
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Which registered object this file is, and its full ancestry with operators and weights."""
    from registry.hashing import digest_of

    digest = digest_of(target)
    matches = backend().find_by_digest(digest)
    if json_out:
        print_json(matches)
        return
    for match in matches:
        label = f"{match.name}@{match.version}" if match.version is not None else match.name
        state = f" ({match.status})" if match.status not in (None, "active") else ""
        console.print(
            f"sha256:{match.sha256} is {match.file} of {match.kind.replace('_', ' ')} {label}{state}",
            markup=False,
            soft_wrap=True,  # a digest and a name are never broken across lines
        )
        if match.ancestry and match.ancestry.edges:
            console.print(_tree(match.ancestry))
        else:
            console.print("  no ancestors: registered from files", markup=False)


def audit_log(
    subject: Annotated[
        str | None, typer.Option("--subject", help="ns/name (all its versions), ns/name@N, key:NAME, ...")
    ] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="principal or API key name")] = None,
    limit: Annotated[int, typer.Option("--limit", help="newest events to show")] = 50,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Recent audit events (registrations, alias moves, keys, compositions)."""
    events = backend().list_events(subject=subject, actor=actor, limit=limit)
    if json_out:
        print_json(events)
        return
    for e in events:
        details = format_details(e.details)
        console.print(
            f"{e.at:%Y-%m-%d %H:%M:%S}  {e.actor:<12} {e.action:<20} {e.subject}  {details}",
            markup=False,
            soft_wrap=True,
        )


def format_details(details: dict[str, Any]) -> str:
    """`k=v k2=v2`: plain scalars as they are, anything with spaces or structure as compact JSON."""
    parts = []
    for key, value in details.items():
        if isinstance(value, str) and value and not any(c.isspace() for c in value):
            text = value
        elif isinstance(value, bool | int | float) or value is None:
            text = json.dumps(value)
        else:
            text = json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
        parts.append(f"{key}={text}")
    return " ".join(parts)


def register(app: typer.Typer) -> None:
    app.command("lineage")(lineage)
    app.command("audit")(audit)
    app.command("audit-log")(audit_log)
