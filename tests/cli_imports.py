"""Which modules a `pemreg` command imports: the command runs in a fresh interpreter, as a user runs it,
and prints sys.modules at exit (the import-time guard of the CLI's fast paths)."""

from __future__ import annotations

import json
import subprocess
import sys

# What no catalog command in remote mode, and no `pemreg compose` handing its spec to the local runner,
# may import: each costs 0.03-1.3 s of start-up (measured by benchmarks/cli_latency.py --imports).
HEAVY = ("torch", "prefect", "transformers", "peft", "boto3", "sqlalchemy", "pydantic_settings", "httpx")
# A catalog read in local mode builds its statements with SQLAlchemy Core the first time it runs (on the
# embedded catalog, later runs execute the SQL compiled then: tests/test_cli_local_reads.py), so the
# package is allowed there; its ORM (and the mapping of the catalog's classes) is not.
LOCAL_FORBIDDEN = (
    "sqlalchemy.orm",
    "registry.catalog.models",
    "registry.service.context",
    "registry.settings",
)

# What a command that builds and prints no registry view (a command's --help, --version, `runner status`,
# `compose` handing its spec to the local runner) may not import besides HEAVY: pydantic (~70 ms of
# start-up). typer 0.29 built a pydantic TypeAdapter for every parameter it parsed, so every command paid
# it; typer 0.28 (pinned in pyproject.toml) does not.
NO_VIEWS = ("pydantic", "pydantic_core")

_PROBE = """
import atexit, json, runpy, sys
atexit.register(lambda: sys.__stderr__.write("\\nMODULES " + json.dumps(sorted(sys.modules)) + "\\n"))
sys.argv = ["pemreg", *json.loads(sys.argv[1])]
runpy.run_module("api.cli.main", run_name="__main__")
"""


def run_and_list_modules(
    env: dict[str, str], *args: str, timeout: float = 300
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    line = next(x for x in done.stderr.splitlines() if x.startswith("MODULES "))
    return done, set(json.loads(line.removeprefix("MODULES ")))


def heavy_in(modules: set[str], allowed: tuple[str, ...] = (), also: tuple[str, ...] = ()) -> set[str]:
    """The heavy top-level packages among `modules` (minus `allowed`, plus `also`, e.g. NO_VIEWS)."""
    return {m for m in modules if m.split(".")[0] in (*HEAVY, *also) and m.split(".")[0] not in allowed}


def local_heavy_in(modules: set[str]) -> set[str]:
    """What a local catalog read must not import: HEAVY but SQLAlchemy Core, and LOCAL_FORBIDDEN."""
    forbidden = {m for m in modules if any(m == f or m.startswith(f + ".") for f in LOCAL_FORBIDDEN)}
    return heavy_in(modules, allowed=("sqlalchemy",)) | forbidden
