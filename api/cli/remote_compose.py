"""`pemreg compose` and `pemreg compositions list|show` in remote mode: the spec goes to the server
(POST /v1/compositions, :validate), which runs it; the output is printed as the local command prints it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .backend import RemoteBackend, backend
from .compose import _print_dry_run, _print_result
from .output import console, err_console, print_json

compositions_app = typer.Typer(help="Composition runs (on the server).", no_args_is_help=True)


def _remote() -> RemoteBackend:
    found = backend()
    assert isinstance(found, RemoteBackend)  # main.py loads this module in remote mode only
    return found


def compose(
    spec_file: Annotated[Path, typer.Argument(help="spec (YAML or JSON)")],
    dry: Annotated[
        bool, typer.Option("--dry-run", help="resolve, check, print interference; compose nothing")
    ] = False,
    wait_: Annotated[bool, typer.Option("--wait", help="follow the run until it ends")] = False,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Compose adapters from a spec: the server runs it (its Prefect flow); --wait follows it."""
    if not spec_file.is_file():
        raise typer.BadParameter(f"{spec_file} is not a file", param_hint="SPEC")
    remote = _remote()
    if dry:
        report = remote.validate(spec_file)
        if json_out:
            print_json(report)
            return
        from registry.service.dry_run import DryInput, DryRun

        inputs = [DryInput(**item) for item in report["inputs"]]
        _print_dry_run(DryRun(report["composition_id"], report["method"], inputs, report["interference"]))
        return
    view = remote.compose(spec_file)
    if wait_:
        with err_console.status(f"composition {view.id}: {view.status}") as status:
            view = remote.wait(view.id, lambda v: status.update(f"composition {v.id}: {v.status}"))
    print_json(view) if json_out else _print_result(view)  # type: ignore[arg-type]
    if view.status == "failed":
        raise typer.Exit(1)


@compositions_app.command("list")
def list_(
    status: Annotated[str | None, typer.Option("--status")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 50,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Recent composition runs, newest first."""
    rows = _remote().list_compositions(status=status, limit=limit)
    if json_out:
        print_json(rows)
        return
    from rich.table import Table

    table = Table("id", "name", "method", "status", "output", "trigger", "created")
    for c in rows:
        out = f"{c.output.name}@{c.output.version}" if c.output else "-"
        created = f"{c.created_at:%Y-%m-%d %H:%M:%S}" if c.created_at else "-"
        table.add_row(
            c.id, c.name, c.method, c.status + (" (cached)" if c.cache_hit else ""), out, c.trigger, created
        )
    console.print(table)


@compositions_app.command("show")
def show(
    composition_id: Annotated[str, typer.Argument()],
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One run: status, output, metrics and inputs."""
    view = _remote().get_composition(composition_id)
    if json_out:
        print_json(view)
        return
    _print_result(view)  # type: ignore[arg-type]
    console.print(
        f"  id {view.id}  flow run {view.flow_run_id or '-'}  trigger {view.trigger}  by {view.principal}",
        markup=False,
    )
    for item in view.inputs:
        ref = item["ref"]
        console.print(
            f"  input {item['name']}@{item['version']} weight {item['weight']:+g} (referenced as {ref})",
            markup=False,
        )


def register(app: typer.Typer) -> None:
    app.command("compose")(compose)
    app.add_typer(compositions_app, name="compositions")
