"""`pemreg keys create|revoke`."""

from __future__ import annotations

from typing import Annotated

import typer

from registry.service.keys import ROLES, create_key, revoke_key

from .deps import registry
from .output import console, err_console

app = typer.Typer(help="API keys for the REST API.", no_args_is_help=True)


@app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", help="unique key name, recorded as the actor of its calls")],
    role: Annotated[str, typer.Option("--role", help=" | ".join(ROLES))],
) -> None:
    """Create a key. The key is printed once, alone on the last line of stdout.

    Locally (no PEMREG_URL) this needs no key: whoever can open the catalog database owns it, so
    `pemreg keys create --name me --role admin` is how to get an admin key on an initialised home."""
    secret = create_key(registry(), name, role)
    err_console.print(f"created {role} key {name!r}; store it now, it is not shown again", markup=False)
    console.print(secret, markup=False)


@app.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="the key's name")]) -> None:
    """Revoke a key: requests with it get 401 from then on."""
    revoke_key(registry(), name)
    console.print(f"revoked {name}", markup=False)
