"""`pemreg`: the command-line shell over the service layer. Exit 0 ok, 1 error (one line), 2 usage."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Annotated

import typer

from registry.errors import RegistryError

from . import adapters, base_models, catalog, compose, keys, serve, setup
from .output import console, err_console

app = typer.Typer(
    name="pemreg",
    help="PEM Registry: catalog and compose parameter-efficient modules (LoRA, (IA)3).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    add_completion=True,
    # help text is plain text: refs like ns/name[@N|@alias] must not be read as Rich markup
    rich_markup_mode=None,
)
app.add_typer(adapters.app, name="adapters")
app.add_typer(base_models.app, name="base-models")
app.add_typer(keys.app, name="keys")
setup.register(app)
catalog.register(app)
compose.register(app)
serve.register(app)


def _print_version(value: bool) -> None:
    if not value:
        return
    from registry import __version__
    from registry.provenance import git_commit

    commit = git_commit()
    console.print(f"pemreg {__version__}" + (f" (git {commit[:12]})" if commit else ""), markup=False)
    raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version (and git commit) and exit.",
        ),
    ] = False,
) -> None:
    """PEM Registry: catalog and compose parameter-efficient modules (LoRA, (IA)3)."""


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # transformers 5.23 deprecation raised inside peft; says nothing actionable to a pemreg user.
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated")
    try:
        app()
    except RegistryError as exc:
        err_console.print(f"error: {one_line(str(exc))}", markup=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("error: interrupted", markup=False)
        sys.exit(1)
    except Exception as exc:  # an unexpected failure is still one line; PEMREG_DEBUG=1 shows the traceback
        if os.environ.get("PEMREG_DEBUG"):
            raise
        err_console.print(f"error: {describe_unexpected(exc)}", markup=False, soft_wrap=True)
        sys.exit(1)


def one_line(text: str) -> str:
    """The first line: a message quoting input or a driver error must not spill over several lines."""
    return text.strip().splitlines()[0] if text.strip() else text


def describe_unexpected(exc: Exception) -> str:
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    if isinstance(exc, PoolTimeout) or isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return "catalog database unavailable (timed out); retry later"
    if isinstance(exc, DBAPIError):
        # Driver errors carry the SQL and parameters on further lines; the first line names the problem.
        kind = "unavailable" if type(exc).__name__ in ("OperationalError", "InterfaceError") else "error"
        return f"catalog database {kind}: {one_line(str(exc.orig) or type(exc.orig).__name__)}"
    if isinstance(exc, SQLAlchemyError):
        return f"catalog database error: {one_line(str(exc))}"
    return f"{type(exc).__name__}: {one_line(str(exc))}"


if __name__ == "__main__":
    main()
