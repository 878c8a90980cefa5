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
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            help="an OIDC token (JWT) of the server's SSO issuer instead of an API key; '-' reads stdin",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Check the server and the credential (an API key, or an SSO token), then save both (0600) in
    $PEMREG_HOME/remote.json. A token is used until it expires; log in again with a fresh one."""
    import sys

    from registry.client import Client

    if not url.startswith(("http://", "https://")):
        raise typer.BadParameter("must start with http:// or https://", param_hint="URL")
    if api_key and token:
        raise typer.BadParameter("give --api-key or --token, not both", param_hint="--token")
    if token == "-":
        token = sys.stdin.readline().strip()
    secret = (
        token
        or api_key
        or os.environ.get("PEMREG_API_KEY")
        or typer.prompt("API key or SSO token", hide_input=True, err=True)
    ).strip()
    with Client(url, secret) as client:
        me = client.whoami()  # 401 / unreachable fail here, before anything is saved
    path = remote.save(url, secret)
    console.print(f"logged in to {url.rstrip('/')} as {me.principal} (saved in {path})", markup=False)


def logout() -> None:
    """Forget the saved server: back to local mode (PEMREG_URL, if set, still applies)."""
    forgot = remote.forget()
    console.print("logged out" if forgot else "not logged in", markup=False)


def register(app: typer.Typer) -> None:
    app.command("login")(login)
    app.command("logout")(logout)
