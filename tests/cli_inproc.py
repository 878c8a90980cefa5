"""`pemreg` run inside the test process, as `python -m api.cli.main` would run it in a child.

A child process spends 1-3 s starting Python and importing what its command needs; the CLI tests spent
minutes of the suite on it. For a test about what a command does and prints, `pemreg()` calls the same
`main()` with what the child would have had: its argv, exactly the given environment (os.environ
replaced, then restored), working directory and stdin; its own stdout and stderr (main()'s logging set-up
and the interpreter's default warning filters write to that stderr); Rich consoles built from that
environment by api/cli/output.py's own lines; no settings, registry, backend or database engine cached by
the test process, and the process-wide runner registry left as it was found. The exit status is main()'s
SystemExit; an exception escaping main() is a traceback on stderr and status 1, as the interpreter does.

Tests whose subject is the process keep a real subprocess: what a command imports (module-level code
runs once per test process), the installed entry point, exit on signals or crashes, and commands that
start processes inheriting the CLI's stdout/stderr (`compose` handing a run to the local runner).
There is no timeout: a command that hangs hangs its test.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import runpy
import subprocess
import sys
import traceback
import types
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path

# The child each call stands for (`child()`)
PROGRAM = (sys.executable, "-m", "api.cli.main")


def child(
    env: Mapping[str, str], *args: str, cwd: str | Path | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`pemreg ARGS` as a real process, for the tests whose subject is the process."""
    return subprocess.run(
        [*PROGRAM, *args], env=env, cwd=cwd, input=input, capture_output=True, text=True, timeout=120
    )


def pemreg(
    env: Mapping[str, str], *args: str, cwd: str | Path | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`pemreg ARGS` with `env` as its whole environment (what subprocess.run(env=...) takes)."""
    from api.cli import main as cli

    out, err = io.StringIO(), io.StringIO()
    with (
        _environment(env),
        _process(cli.__file__, args, cwd, input),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        _fresh_state(),
        _consoles(),
        _logging(),
        warnings.catch_warnings(record=True) as caught,
    ):
        _startup_warning_filters()
        try:
            cli.main()
            code = 0
        except SystemExit as exc:
            code = _status(exc, err)
        except Exception:
            err.write(traceback.format_exc())
            code = 1
        for w in caught:  # shown on stderr by the child (after the output here, not interleaved)
            err.write(warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line))
    return subprocess.CompletedProcess([*PROGRAM, *args], code, out.getvalue(), err.getvalue())


def _startup_warning_filters() -> None:
    """CPython's filters at start-up (no -W option, no PYTHONWARNINGS, not in development mode)."""
    warnings.resetwarnings()
    warnings.filterwarnings("default", category=DeprecationWarning, module="__main__", append=True)
    for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
        warnings.simplefilter("ignore", category, append=True)


def _status(exc: SystemExit, err: io.StringIO) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    err.write(f"{exc.code}\n")  # sys.exit("message"): printed, status 1
    return 1


@contextlib.contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _process(
    main_file: str, args: tuple[str, ...], cwd: str | Path | None, stdin: str | None
) -> Iterator[None]:
    """argv and __main__ as `python -m api.cli.main` sets them (click names the program from both),
    the working directory, and stdin (`input`, else empty)."""
    argv, main_module, stdin_was, here = sys.argv, sys.modules["__main__"], sys.stdin, os.getcwd()
    program = types.ModuleType("__main__")
    program.__package__ = "api.cli"
    program.__file__ = main_file
    sys.argv = [main_file, *args]
    sys.modules["__main__"] = program
    sys.stdin = io.StringIO(stdin or "")
    if cwd is not None:
        os.chdir(cwd)
    try:
        yield
    finally:
        sys.argv, sys.stdin = argv, stdin_was
        sys.modules["__main__"] = main_module
        os.chdir(here)


@contextlib.contextmanager
def _fresh_state() -> Iterator[None]:
    """Nothing cached from env by the test process reaches the command, nothing of the command's stays:
    settings, the CLI's registry and backend, database engines (disposed after, as at a child's exit),
    and the runners and probe the command may register."""
    from api.cli import deps
    from registry.catalog import db
    from registry.service.compositions import runs
    from registry.settings import get_settings

    def clear() -> None:
        get_settings.cache_clear()
        deps.registry.cache_clear()
        backend = sys.modules.get("api.cli.backend")
        if backend is not None:
            backend.backend.cache_clear()

    engines, runners, probe, owners = db._engines, dict(runs._runners), runs._probe, list(runs._owners)
    db._engines = {}
    clear()
    try:
        yield
    finally:
        clear()
        with db._engines_lock:
            mine, db._engines = db._engines, engines
        for engine in mine.values():
            engine.dispose()
        runs._runners.clear()
        runs._runners.update(runners)
        runs._owners[:] = owners
        runs.register_probe(probe)


@contextlib.contextmanager
def _consoles() -> Iterator[None]:
    """api/cli/output.py's consoles as its own lines build them in this environment and with this stdout
    (width from COLUMNS, no colour on a pipe); the objects the CLI modules imported stay the same."""
    from api.cli import output

    fresh = runpy.run_path(output.__file__)
    saved = {name: dict(vars(getattr(output, name))) for name in ("console", "err_console")}
    for name in saved:
        vars(getattr(output, name)).clear()
        vars(getattr(output, name)).update(vars(fresh[name]))
    try:
        yield
    finally:
        for name, state in saved.items():
            vars(getattr(output, name)).clear()
            vars(getattr(output, name)).update(state)


@contextlib.contextmanager
def _logging() -> Iterator[None]:
    """A root logger without handlers, so main()'s logging.basicConfig sets it up on this stderr."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.handlers.clear()
    try:
        yield
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
