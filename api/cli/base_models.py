"""`pemreg base-models add|list`."""

from __future__ import annotations

from typing import Annotated

import typer

from .backend import backend
from .output import console, print_json

app = typer.Typer(help="Base models adapters belong to.", no_args_is_help=True)


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="e.g. tiny-gpt2 or meta-llama/Llama-3.1-8B")],
    source: Annotated[str, typer.Option("--source", help="local folder, s3:// folder, or hub id")],
    revision: Annotated[str, typer.Option("--revision")] = "main",
    sha256: Annotated[str | None, typer.Option("--sha256", help="digest of the weights, if known")] = None,
) -> None:
    view, created = backend().add_base_model(name, source=source, revision=revision, sha256=sha256)
    state = "registered" if created else "already registered:"
    console.print(
        f"{state} {view.name}@{view.revision} ({view.architecture or 'architecture unknown'})", markup=False
    )


@app.command("list")
def list_(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    rows = backend().list_base_models()
    if json_out:
        print_json(rows)
        return
    from rich.table import Table

    table = Table("name", "revision", "architecture", "source")
    for r in rows:
        table.add_row(r.name, r.revision, r.architecture or "", r.source)
    console.print(table)
