"""`pemreg login URL` / `pemreg logout`: remote mode, where every catalog command goes through a
server's REST API and this machine needs no database URL nor S3 credentials."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from . import remote
from .output import console


def login(
    url: Annotated[
        str, typer.Argument(help="the server, e.g. https://pemreg.example.org or http://127.0.0.1:8000")
    ],
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", help="else $PEMREG_API_KEY, else asked for (hidden)", show_default=False),
    ] = None,
) -> None:
    """Check the server and key, then save both (0600) in $PEMREG_HOME/remote.json."""
    from registry.client import Client

    if not url.startswith(("http://", "https://")):
        raise typer.BadParameter("must start with http:// or https://", param_hint="URL")
    key = api_key or os.environ.get("PEMREG_API_KEY") or typer.prompt("API key", hide_input=True, err=True)
    with Client(url, key) as client:
        client.list_adapters(limit=1)  # 401 / unreachable fail here, before anything is saved
    path = remote.save(url, key)
    console.print(f"logged in to {url.rstrip('/')} (saved in {path})", markup=False)


def logout() -> None:
    """Forget the saved server: back to local mode (PEMREG_URL, if set, still applies)."""
    forgot = remote.forget()
    console.print("logged out" if forgot else "not logged in", markup=False)


def register(app: typer.Typer) -> None:
    app.command("login")(login)
    app.command("logout")(logout)
