"""`pemreg compose` and `pemreg compositions list|show` in remote mode: the spec goes to the server
(POST /v1/compositions, :validate), which runs it; the output is printed by the local command's own
helpers (compose.py), with the same options and help."""

from __future__ import annotations

import typer

from .backend import RemoteBackend, backend
from .compose import (
    LIST_HELP,
    SHOW_HELP,
    DryRunOpt,
    JsonOpt,
    LimitOpt,
    RunIdArg,
    SpecArg,
    StatusOpt,
    WaitOpt,
    fail_line,
    print_dry_run,
    print_result,
    print_runs,
    print_show,
)
from .output import err_console, print_json

compositions_app = typer.Typer(help="Composition runs (on the server).", no_args_is_help=True)


def _remote() -> RemoteBackend:
    found = backend()
    assert isinstance(found, RemoteBackend)  # main.py loads this module in remote mode only
    return found


def compose(
    spec_file: SpecArg,
    dry: DryRunOpt = False,
    wait_: WaitOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Compose adapters from a spec: the server runs it (its Prefect flow); --wait follows it.

    A failed or rejected run prints one line on stderr and exits 1."""
    if not spec_file.is_file():
        raise typer.BadParameter(f"{spec_file} is not a file", param_hint="SPEC")
    remote = _remote()
    if dry:
        report = remote.validate(spec_file)
        print_json(report) if json_out else print_dry_run(report)
        return
    view = remote.compose(spec_file)
    if wait_ and not view.done:
        with err_console.status(f"composition {view.id}: {view.status}") as status:
            view = remote.wait(view.id, lambda v: status.update(f"composition {v.id}: {v.status}"))
    print_json(view) if json_out else print_result(view)
    failed = fail_line(view)
    if failed:
        err_console.print(failed, markup=False, soft_wrap=True)
        raise typer.Exit(1)


@compositions_app.command("list", help=LIST_HELP)
def list_(status: StatusOpt = None, limit: LimitOpt = 50, json_out: JsonOpt = False) -> None:
    rows = _remote().list_compositions(status=status, limit=limit)
    if json_out:
        print_json(rows)
        return
    print_runs(rows)


@compositions_app.command("show", help=SHOW_HELP)
def show(composition_id: RunIdArg, json_out: JsonOpt = False) -> None:
    view = _remote().get_composition(composition_id)
    if json_out:
        print_json(view)
        return
    print_show(view)


def register(app: typer.Typer) -> None:
    app.command("compose")(compose)
    app.add_typer(compositions_app, name="compositions")
