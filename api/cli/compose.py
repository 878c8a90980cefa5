"""`pemreg compose`, `pemreg compositions list|show`, `pemreg worker`, `pemreg prefect-server`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from registry.service import compositions as comps
from registry.service.dry_run import DryRun, dry_run
from registry.spec import load_spec

from .deps import registry
from .output import console, err_console, print_json

compositions_app = typer.Typer(help="Composition runs.", no_args_is_help=True)
prefect_app = typer.Typer(help="The Prefect server kept warm for the embedded default.", no_args_is_help=True)


def use_prefect() -> str | None:
    """Returns 'deployment' when PREFECT_API_URL is configured, else points this process at a local
    Prefect (a warm background server by default) and returns None."""
    if os.environ.get("PREFECT_API_URL"):
        return "deployment"
    settings = registry().settings
    if settings.prefect_mode == "local-server":
        from flows import local_server

        with err_console.status("starting the local Prefect server (first use only)…"):
            os.environ["PREFECT_API_URL"] = local_server.ensure_running(
                settings.home, settings.local_prefect_port
            )
    return None


def _print_dry_run(report: DryRun) -> None:
    table = Table("input", "version", "sha256", "weight", "rank", title="resolved inputs")
    for item in report.inputs:
        table.add_row(
            item.name, str(item.version), item.sha256[:12], f"{item.weight:+g}", str(item.rank or "-")
        )
    console.print(table)
    pairs = Table(
        "pair", "rms cosine", "mean cosine", "max |cosine|", "modules", title="interference (deltas)"
    )
    for p in report.interference["pairs"]:
        pairs.add_row(
            f"{report.inputs[p['i']].label} / {report.inputs[p['j']].label}",
            f"{p['rms_cosine']:.4f}",
            f"{p['mean_cosine']:+.4f}",
            f"{p['max_abs_cosine']:.4f}",
            str(p["modules"]),
        )
    console.print(pairs)
    for warning in report.interference.get("warnings", []):
        err_console.print(f"warning: {warning}", markup=False)
    console.print(
        f"composition id {report.composition_id} ({report.method}); nothing composed (dry run)", markup=False
    )


def _print_result(view: comps.CompositionView) -> None:
    if view.status == "succeeded" and view.output:
        hit = " (cache hit: not recomputed)" if view.cache_hit else ""
        console.print(
            f"succeeded: {view.output.name}@{view.output.version} sha256:{view.output.sha256[:12]}{hit}",
            markup=False,
        )
    else:
        console.print(
            f"{view.status}: composition {view.id}" + (f" ({view.error})" if view.error else ""), markup=False
        )
    for name, value in view.metrics.items():
        console.print(f"  {name} = {value:.6g}", markup=False)


def compose(
    spec_file: Annotated[Path, typer.Argument(help="spec (YAML or JSON)", exists=False)],
    dry: Annotated[
        bool, typer.Option("--dry-run", help="resolve, check, print interference; compose nothing")
    ] = False,
    wait_: Annotated[bool, typer.Option("--wait", help="follow a submitted run until it ends")] = False,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Compose adapters from a spec (runs the Prefect `compose` flow)."""
    if not spec_file.is_file():
        raise typer.BadParameter(f"{spec_file} is not a file", param_hint="SPEC")
    spec = load_spec(spec_file)
    reg = registry()
    if dry:
        report = dry_run(reg, spec)
        print_json(report.to_dict()) if json_out else _print_dry_run(report)
        return
    mode = use_prefect()
    from flows import trigger

    if mode == "deployment":
        view = trigger.submit_to_deployment(reg, spec, "cli")
        if wait_:
            with err_console.status(f"composition {view.id}: {view.status}") as status:
                view = trigger.wait(reg, view.id, lambda v: status.update(f"composition {v.id}: {v.status}"))
    else:
        view = trigger.run_in_process(reg, spec, "cli")
    print_json(view) if json_out else _print_result(view)
    if view.status == "failed":
        raise typer.Exit(1)


@compositions_app.command("list")
def list_(
    status: Annotated[str | None, typer.Option("--status")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 50,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    rows = comps.list_compositions(registry(), status=status, limit=limit)
    if json_out:
        print_json(rows)
        return
    table = Table("id", "name", "method", "status", "output", "trigger", "created")
    for c in rows:
        out = f"{c.output.name}@{c.output.version}" if c.output else "-"
        table.add_row(
            c.id[:8],
            c.name,
            c.method,
            c.status + (" (cached)" if c.cache_hit else ""),
            out,
            c.trigger,
            f"{c.created_at:%Y-%m-%d %H:%M:%S}",
        )
    console.print(table)


@compositions_app.command("show")
def show(
    composition_id: Annotated[str, typer.Argument()],
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    view = comps.get(registry(), composition_id)
    if json_out:
        print_json(view)
        return
    _print_result(view)
    console.print(
        f"  id {view.id}  flow run {view.flow_run_id or '-'}  trigger {view.trigger}  by {view.principal}",
        markup=False,
    )
    for item in view.inputs:
        console.print(
            f"  input {item['name']}@{item['version']} weight {item['weight']:+g} "
            f"(referenced as {item['ref']})",
            markup=False,
        )


def worker(
    limit: Annotated[int, typer.Option("--limit", help="max concurrent runs")] = 2,
    subprocess: Annotated[
        bool, typer.Option("--subprocess", help="one interpreter per run (flow.serve)")
    ] = False,
) -> None:
    """Serve the compose, recompose-stale and scheduled deployments (Prefect).

    Runs execute in this warm process by default (no per-run interpreter start-up)."""
    use_prefect()
    from flows.worker import run_worker

    run_worker(limit=limit, subprocess=subprocess)


@prefect_app.command("start")
def prefect_start() -> None:
    from flows import local_server

    settings = registry().settings
    console.print(local_server.ensure_running(settings.home, settings.local_prefect_port), markup=False)


@prefect_app.command("stop")
def prefect_stop() -> None:
    from flows import local_server

    stopped = local_server.stop(registry().settings.home)
    console.print("stopped" if stopped else "not running", markup=False)


@prefect_app.command("status")
def prefect_status() -> None:
    from flows import local_server

    state = local_server.status(registry().settings.home)
    console.print(f"running at {state['url']} (pid {state['pid']})" if state else "not running", markup=False)


def register(app: typer.Typer) -> None:
    app.command("compose")(compose)
    app.command("worker")(worker)
    app.add_typer(compositions_app, name="compositions")
    app.add_typer(prefect_app, name="prefect-server")
