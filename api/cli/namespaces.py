"""`pemreg namespaces list|show|create|set|grant|revoke` and `pemreg whoami`."""

from __future__ import annotations

from typing import Annotated

import typer

from .backend import backend
from .output import console, id_table, print_json, print_table

app = typer.Typer(
    help="Namespaces (the ns of ns/name): visibility, protected aliases, grants.", no_args_is_help=True
)
VISIBILITIES = ("internal", "private")
ROLES = ("reader", "writer", "maintainer")  # = registry.catalog.models.NAMESPACE_ROLES (SQLAlchemy)

Json = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
Protect = Annotated[
    list[str] | None,
    typer.Option("--protect", help="alias glob only maintainers move (repeatable), e.g. prod, release-*"),
]


def _visibility(value: str | None) -> str | None:
    if value is not None and value not in VISIBILITIES:
        raise typer.BadParameter("must be internal or private", param_hint="--visibility")
    return value


@app.command("list")
def list_(json_out: Json = False) -> None:
    """The namespaces you may read, with your role in each (and why)."""
    rows = backend().list_namespaces()
    if json_out:
        print_json(rows)
        return
    table = id_table(
        "namespace", "visibility", "your role", columns=("via", "protected aliases", "description")
    )
    for ns in rows:
        table.add_row(
            ns.name,
            ns.visibility,
            ns.role or "",
            ns.via or "",
            ", ".join(ns.protected_aliases),
            ns.description or "",
        )
    print_table(table)


@app.command("show")
def show(namespace: Annotated[str, typer.Argument(help="e.g. acme")], json_out: Json = False) -> None:
    """A namespace and its grants."""
    ns = backend().get_namespace(namespace)
    grants = backend().list_grants(namespace)
    if json_out:
        print_json({**ns.model_dump(mode="json"), "grants": [g.model_dump(mode="json") for g in grants]})
        return
    owned = "owned" if ns.owned else "unowned: keys' global roles apply"
    console.print(f"{ns.name}  {ns.visibility}, {owned}; your role: {ns.role} (via {ns.via})", markup=False)
    if ns.protected_aliases:
        console.print(f"protected aliases: {', '.join(ns.protected_aliases)}", markup=False)
    if ns.description:
        console.print(ns.description, markup=False)
    table = id_table("subject", "role", columns=("granted by", "granted"))
    for g in grants:
        table.add_row(g.subject, g.role, g.granted_by, f"{g.granted_at:%Y-%m-%d %H:%M}")
    print_table(table)


@app.command("create")
def create(
    namespace: Annotated[str, typer.Argument(help="e.g. acme")],
    visibility: Annotated[
        str | None, typer.Option("--visibility", help="internal | private (default: the server's)")
    ] = None,
    protect: Protect = None,
    description: Annotated[str | None, typer.Option("--description", help="what the namespace holds")] = None,
) -> None:
    """Create a namespace (admin)."""
    ns = backend().create_namespace(
        namespace,
        visibility=_visibility(visibility),
        protected_aliases=list(protect or []),
        description=description,
    )
    console.print(f"created {ns.visibility} namespace {ns.name}", markup=False)


@app.command("set")
def set_(
    namespace: Annotated[str, typer.Argument(help="e.g. acme")],
    visibility: Annotated[str | None, typer.Option("--visibility", help="internal | private")] = None,
    protect: Protect = None,
    no_protect: Annotated[
        bool, typer.Option("--no-protect", help="protect no alias (clears the patterns)")
    ] = False,
    description: Annotated[str | None, typer.Option("--description", help='"" clears it')] = None,
) -> None:
    """Change a namespace (a maintainer): what is given replaces the old value."""
    if protect and no_protect:
        raise typer.BadParameter("give --protect or --no-protect, not both", param_hint="--no-protect")
    if visibility is None and protect is None and not no_protect and description is None:
        raise typer.BadParameter("nothing to change", param_hint="--visibility/--protect/--description")
    ns = backend().update_namespace(
        namespace,
        visibility=_visibility(visibility),
        protected_aliases=[] if no_protect else list(protect) if protect else None,
        description=description,
    )
    patterns = ", ".join(ns.protected_aliases) or "none"
    console.print(f"{ns.name}: {ns.visibility}; protected aliases: {patterns}", markup=False)


@app.command("grant")
def grant(
    namespace: Annotated[str, typer.Argument(help="e.g. acme")],
    subject: Annotated[str, typer.Argument(help="key:NAME, user:SUB or group:NAME")],
    role: Annotated[str, typer.Argument(help="reader | writer | maintainer")],
) -> None:
    """Give a key, an SSO user or a group a role in the namespace (a maintainer)."""
    if role not in ROLES:
        raise typer.BadParameter("must be reader, writer or maintainer", param_hint="ROLE")
    g = backend().grant(namespace, subject, role)
    console.print(f"{g.subject} is {g.role} in {g.namespace}", markup=False)


@app.command("revoke")
def revoke(
    namespace: Annotated[str, typer.Argument(help="e.g. acme")],
    subject: Annotated[str, typer.Argument(help="key:NAME, user:SUB or group:NAME")],
) -> None:
    """Remove a subject's grant (a maintainer): effective from its next request."""
    backend().revoke(namespace, subject)
    console.print(f"revoked {subject} in {namespace}", markup=False)


def whoami(json_out: Json = False) -> None:
    """Who you are to the registry: principal, groups, global role, namespace grants."""
    me = backend().whoami()
    if json_out:
        print_json(me)
        return
    groups = f" (groups: {', '.join(me.groups)})" if me.groups else ""
    console.print(f"{me.principal}{groups}, global role {me.role}", markup=False)
    for g in me.grants:
        via = "" if g.via == me.principal else f" via {g.via}"
        console.print(f"  {g.namespace}: {g.role}{via}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("whoami")(whoami)
