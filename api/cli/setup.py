"""`pemreg init` and `pemreg demo`."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from registry.service.setup import initialize

from .deps import registry
from .output import console, err_console


def init() -> None:
    """Migrate the catalog to the latest schema, create the bucket/folder, print the first admin key."""
    reg = registry()
    key = initialize(reg)
    console.print(f"catalog: {reg.settings.resolved_database_url}", markup=False)
    console.print(f"store:   {reg.settings.resolved_artifact_store}", markup=False)
    if key:
        err_console.print("first admin key (shown once):", markup=False)
        console.print(key, markup=False)
    else:
        console.print(
            "already initialised (API keys exist; create more with `pemreg keys create`)", markup=False
        )


def demo(
    workdir: Annotated[
        Path | None, typer.Option("--workdir", help="where to build the demo model and adapters")
    ] = None,
) -> None:
    """Build a tiny model, make LoRA and (IA)3 adapters with peft, register and query them."""
    from registry.demo import run_demo

    from .compose import use_prefect

    reg = registry()
    initialize(reg)
    use_prefect()  # the demo's compositions are real Prefect flow runs
    with tempfile.TemporaryDirectory(prefix="pemreg-demo-") as tmp:
        run_demo(reg, workdir or Path(tmp), console.print)


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("demo")(demo)
