"""`pemreg`: the command-line shell over the service layer. Exit 0 ok, 1 error (one line), 2 usage."""

from __future__ import annotations

import logging
import os
import sys
import warnings

import typer

from registry.errors import RegistryError

from . import adapters, base_models, catalog, compose, gc, keys, serve, setup
from .output import err_console

app = typer.Typer(
    name="pemreg",
    help="PEM Registry: catalog and compose parameter-efficient modules (LoRA, (IA)3).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(adapters.app, name="adapters")
app.add_typer(base_models.app, name="base-models")
app.add_typer(keys.app, name="keys")
setup.register(app)
catalog.register(app)
compose.register(app)
gc.register(app)
serve.register(app)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # transformers 5.23 deprecation raised inside peft; says nothing actionable to a pemreg user.
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated")
    try:
        app()
    except RegistryError as exc:
        err_console.print(f"error: {exc}", markup=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("error: interrupted", markup=False)
        sys.exit(1)
    except Exception as exc:  # an unexpected failure is still one line; PEMREG_DEBUG=1 shows the traceback
        if os.environ.get("PEMREG_DEBUG"):
            raise
        err_console.print(f"error: {type(exc).__name__}: {exc}", markup=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
