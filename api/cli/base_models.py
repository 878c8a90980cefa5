"""`pemreg base-models add|list`."""

from __future__ import annotations

from typing import Annotated

import typer

from .backend import backend
from .output import console, id_table, print_json, print_table

app = typer.Typer(help="Base models adapters belong to.", no_args_is_help=True)


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="e.g. tiny-gpt2 or meta-llama/Llama-3.1-8B")],
    source: Annotated[str, typer.Option("--source", help="local folder, s3:// folder, or hub id")],
    revision: Annotated[
        str, typer.Option("--revision", help="revision label (git revision for hub ids)")
    ] = "main",
    sha256: Annotated[str | None, typer.Option("--sha256", help="digest of the weights, if known")] = None,
) -> None:
    """Register a base model (its architecture is read from the source's config.json when reachable)."""
    view, created = backend().add_base_model(name, source=source, revision=revision, sha256=sha256)
    state = "registered" if created else "already registered:"
    console.print(
        f"{state} {view.name}@{view.revision} ({view.architecture or 'architecture unknown'})", markup=False
    )


@app.command("list")
def list_(json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """List registered base models."""
    rows = backend().list_base_models()
    if json_out:
        print_json(rows)
        return
    table = id_table("name", "revision", columns=("architecture", "source"))
    for r in rows:
        table.add_row(r.name, r.revision, r.architecture or "", r.source)
    print_table(table)
