"""`pemreg keys create|revoke|list`."""

from __future__ import annotations

from typing import Annotated

import typer

from .backend import backend
from .output import console, err_console, id_table, print_json, print_table

ROLES = ("reader", "writer", "admin")  # = registry.service.admin.keys.ROLES (that module imports SQLAlchemy)

app = typer.Typer(help="API keys for the REST API.", no_args_is_help=True)


@app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", help="unique key name, recorded as the actor of its calls")],
    role: Annotated[str, typer.Option("--role", help=" | ".join(ROLES))],
) -> None:
    """Create a key. The key is printed once, alone on the last line of stdout.

    Locally (no PEMREG_URL) this needs no key: whoever can open the catalog database owns it, so
    `pemreg keys create --name me --role admin` is how to get an admin key on an initialised home."""
    secret = backend().create_key(name, role)
    err_console.print(f"created {role} key {name!r}; store it now, it is not shown again", markup=False)
    console.print(secret, markup=False)


@app.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="the key's name")]) -> None:
    """Revoke a key: requests with it get 401 from then on."""
    backend().revoke_key(name)
    console.print(f"revoked {name}", markup=False)


@app.command("list")
def list_(json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Every key with its role and dates (admin in remote mode); never the secrets."""
    keys = backend().list_keys()
    if json_out:
        print_json(keys)
        return
    table = id_table("name", "role", columns=("created by", "created", "revoked"))
    for k in keys:
        revoked = f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "-"
        table.add_row(k.name, k.role, k.created_by, f"{k.created_at:%Y-%m-%d %H:%M}", revoked)
    print_table(table)
