"""`pemreg`: the command-line shell over the service layer. Exit 0 ok, 1 error (one line), 2 usage.

Commands are grouped in modules that are imported only when their command runs: `pemreg adapters list`
loads neither the composition engine, Prefect nor Alembic. `--help`, completion and an unknown
command load all of them. In remote mode (`pemreg login`, or PEMREG_URL) catalog commands go through
the REST API and server-only commands refuse with one line.
"""

from __future__ import annotations

import copy
import gc
import importlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any


@contextmanager
def _collector_paused(paused: bool = True) -> Iterator[None]:
    """Run without the cyclic garbage collector when `paused`; its state is restored after. What was
    allocated meanwhile is handed to the oldest generation (freeze, then unfreeze): left in the youngest,
    the first allocation after would make the collector pass over all of it (~15 ms after a read).
    Start-up allocates tens of thousands of objects that live to the end (modules, classes, functions)
    and no garbage: with the collector running, ~10% of a catalog read's CPU time went to its passes."""
    collecting = gc.isenabled()
    if paused:
        gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.freeze()
            gc.unfreeze()
        if collecting:
            gc.enable()


with _collector_paused():  # what every command imports (Typer, Rich): ~7 ms of collector passes
    import typer

    from registry.errors import RegistryError, describe_unexpected

    from . import remote
    from .output import console, err_console

HELP = "PEM Registry: catalog and compose parameter-efficient modules (LoRA, (IA)3)."

# Top-level command -> the module that registers it (`register(app)`, or a Typer sub-app `app`).
SUBAPPS = {
    "adapters": "adapters",
    "base-models": "base_models",
    "keys": "keys",
    "methods": "methods",
    "namespaces": "namespaces",
    "webhooks": "webhooks",
}
COMMANDS = {
    "init": "setup",
    "demo": "setup",
    "lineage": "catalog",
    "audit": "catalog",
    "audit-log": "catalog",
    "compose": "compose",
    "runner": "compose",
    "compositions": "compositions",
    "worker": "compositions",
    "prefect-server": "compositions",
    "gc": "gc",
    "serve": "serve",
    "login": "login",
    "logout": "login",
    "whoami": "namespaces",
}
# As `pemreg --help` lists them.
MODULE_ORDER = ("setup", "catalog", "compose", "compositions", "gc", "serve", "login", "namespaces")
# Catalog reads (local: Core on the catalog; remote: the REST read client) exit within a fraction of a
# second, most of it imports (SQLAlchemy, pydantic): they run with the cyclic collector paused
# (_collector_paused); every other command (servers, workers, compose, transfers) keeps it.
READS = frozenset(
    {
        "adapters list",
        "adapters show",
        "base-models list",
        "base-models show",
        "namespaces list",
        "namespaces show",
        "keys list",
        "lineage",
        "audit-log",
        "whoami",
    }
)


def build(command: str | None = None, subcommand: str | None = None) -> typer.Typer:
    """The app with `command`'s module only, or with every module when command is None / unknown.
    With a known `command`, only that command is kept, and of its group only `subcommand` (when it names
    one of the group's commands): see `_keep_only`."""
    app = typer.Typer(
        name="pemreg",
        help=HELP,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        # --install-completion / --show-completion for bash, zsh, fish, PowerShell
        add_completion=True,
        # help text is plain text: refs like ns/name[@N|@alias] must not be read as Rich markup
        rich_markup_mode=None,
    )
    # The callback (--version) also keeps `pemreg` a command group when only one command is loaded
    # (Typer would otherwise run that single command as the program itself).
    app.callback()(root)
    known = command in SUBAPPS or command in COMMANDS
    for cli_name, module in SUBAPPS.items():
        if not known or command == cli_name:
            app.add_typer(_module(module).app, name=cli_name)
    wanted = MODULE_ORDER if not known else (COMMANDS.get(command or ""),)
    remote_mode = remote.current() is not None
    for module in MODULE_ORDER:
        if module not in wanted:
            continue
        if remote_mode and module in ("compose", "compositions"):
            if module == "compositions" and "compose" in wanted:
                continue  # remote_compose registered both with `compose`
            module = "remote_compose"  # compose / compositions through the server's API
        _module(module).register(app)
    if known:
        _keep_only(app, command or "", subcommand)
    return app


def _keep_only(app: typer.Typer, command: str, subcommand: str | None) -> None:
    """Typer turns every registered command into a Click command (reading each parameter's type hints)
    before it parses argv: ~1 ms a command, 15 ms for the `adapters` group. Keep what this invocation
    runs: `command` (its module may register others), and of a group only `subcommand` when that names
    one of its commands or groups; otherwise (no subcommand, a mistyped one, `--help` of the group) the
    whole group, so its help, its errors and their suggestions are the same."""
    app.registered_commands = [c for c in app.registered_commands if _name(c) == command]
    app.registered_groups = [g for g in app.registered_groups if g.name == command]
    for info in app.registered_groups:  # this app's own TyperInfo: the module's Typer is left whole
        group = info.typer_instance
        if group is None or subcommand is None:
            continue
        commands = [c for c in group.registered_commands if _name(c) == subcommand]
        groups = [g for g in group.registered_groups if g.name == subcommand]
        if commands or groups:
            info.typer_instance = trimmed = copy.copy(group)
            trimmed.registered_commands, trimmed.registered_groups = commands, groups


def _name(info: Any) -> str:
    """A registered command's name, as Typer derives it (`name`, else the function's)."""
    return str(info.name or info.callback.__name__.lower().replace("_", "-"))


def _module(name: str) -> Any:
    return importlib.import_module(f"{__package__}.{name}")


def _command(argv: list[str]) -> str | None:
    """The first word that is not an option, unless completion or help of the whole app is asked."""
    if any(k.endswith("_COMPLETE") for k in os.environ):
        return None
    return next((a for a in argv if not a.startswith("-")), None)


def _subcommand(argv: list[str], command: str | None) -> str | None:
    """The word right after `command` (`list` in `adapters list`), unless an option comes between
    (`adapters --help list` is the group's help)."""
    if command is None or command not in argv:
        return None
    after = argv[argv.index(command) + 1 : argv.index(command) + 2]
    return after[0] if after and not after[0].startswith("-") else None


def __getattr__(name: str) -> Any:
    if name == "app":  # the whole app, for tools and tests that import it
        return build()
    raise AttributeError(name)


def _print_version(value: bool) -> None:
    if not value:
        return
    console.print(_version_line(), markup=False)
    raise typer.Exit()


def _version_line() -> str:
    from registry import __version__
    from registry.provenance import git_commit

    commit = git_commit()
    return f"pemreg {__version__}" + (f" (git {commit[:12]})" if commit else "")


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
    # pydantic looks up plugins through every installed distribution's entry points on first use
    # (importlib.metadata: tens of ms with torch, prefect and their dependencies installed); the CLI
    # uses none. Still overridable by setting the variable.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # transformers 5.23 deprecation raised inside peft; says nothing actionable to a pemreg user.
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated")
    try:
        if sys.argv[1:] == ["--version"]:  # no command: no need to build (import) every module
            console.print(_version_line(), markup=False)
            return
        command = _command(sys.argv[1:])
        reconcile = command == "compositions" and "reconcile" in sys.argv
        if command in remote.SERVER_ONLY or reconcile:
            server = remote.current()
            if server is not None:
                label = "compositions reconcile" if reconcile else command
                err_console.print(
                    f"error: `pemreg {label}` runs on the server, not through its API; this CLI is in "
                    f"remote mode ({server.url}, from {server.source}); `pemreg logout` / unset PEMREG_URL "
                    "for local mode",
                    markup=False,
                    soft_wrap=True,
                )
                sys.exit(1)
        subcommand = _subcommand(sys.argv[1:], command)
        with _collector_paused(command in READS or f"{command} {subcommand}" in READS):
            build(command, subcommand)()
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


if __name__ == "__main__":
    main()
