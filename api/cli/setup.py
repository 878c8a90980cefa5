"""`pemreg init` and `pemreg demo`."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from registry.service.admin.setup import initialize

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
            "already initialised (API keys exist). Local commands need no key; for the REST API create "
            "one with: pemreg keys create --name NAME --role admin",
            markup=False,
            soft_wrap=True,
        )


def demo(
    workdir: Annotated[
        Path | None, typer.Option("--workdir", help="where to build the data, base model and adapters")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="report folder (default $PEMREG_HOME/demo, with --quick demo-quick)"),
    ] = None,
    quick: Annotated[
        bool,
        typer.Option("--quick", help="3 adapters, 2 compositions (weather merge, unlearning) instead of all"),
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="seed for data, training and compositions")] = 0,
    real: Annotated[
        bool, typer.Option("--real", help="the settings on SmolLM2-135M (see docs/demo-real.md; ~15 min)")
    ] = False,
) -> None:
    """Reproduce the paper's settings in miniature: pre-train a tiny base on synthetic domains, train
    LoRAs and (IA)3 adapters, register them, compose from examples/specs/demo-*.yaml through the Prefect
    flows, and report perplexities, interference and lineage (table, markdown, PNG)."""
    # Prefect's per-task INFO lines would bury the report; its warnings and errors still show. Set before
    # anything imports prefect, which reads its settings at import.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from registry.demo import run_demo

    from .compose import install_runners

    reg = registry()
    initialize(reg, first_key=False)  # `pemreg init` afterwards prints the first admin key
    install_runners("in-process")  # the demo's compositions are real Prefect flow runs, in this process
    say = lambda text: console.print(text, markup=False, soft_wrap=True)  # noqa: E731 - tables stay whole in logs
    if real:
        from registry.demo.real import run_real_demo
        from registry.service.compositions import runs

        run_real_demo(
            reg,
            say,
            lambda r, spec: runs.start(r, spec, "cli", runner="in-process"),
            quick=quick,
            out_dir=out,
            seed=seed,
        )
        return
    with tempfile.TemporaryDirectory(prefix="pemreg-demo-") as tmp:
        run_demo(reg, workdir or Path(tmp), say, quick=quick, out_dir=out, seed=seed)


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("demo")(demo)
