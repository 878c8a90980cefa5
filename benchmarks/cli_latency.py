"""Wall time of catalog CLI commands, local and remote, beside `python -c pass` (the floor of any command),
and the import cost of the modules a command may pull in.

    .venv/bin/python benchmarks/cli_latency.py [--runs 9] [--imports] [--instructions] [--database-url URL]

Builds a throwaway embedded catalog (SQLite + file store under a temp PEMREG_HOME) with three adapters
made by peft on a tiny model, starts `pemreg serve` on it, and times each command as a user runs it (a
fresh `pemreg` process, to exit): local mode against the catalog directly, remote mode with only
PEMREG_URL + PEMREG_API_KEY. Targets (issues 11 and 25): <= 0.4 s local, <= 0.3 s remote, on an idle machine;
the load average is printed with the figures because on 2 shared cores it moves them by 2-5x.
`--instructions` also counts each command's instructions once under valgrind (cachegrind without cache
simulation, ~10 s a command): a figure the load does not move, to compare two versions of the code.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PEMREG = str(Path(sys.executable).with_name("pemreg"))
TARGETS = {"local": 0.4, "remote": 0.3}
COMMANDS = (
    ["adapters", "list"],
    ["adapters", "show", "bench/math"],
    ["lineage", "bench/math@prod"],
    ["whoami"],
    ["namespaces", "list"],
    ["audit-log"],
    ["base-models", "list"],
    ["base-models", "show", "tiny-llama"],
)


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wall(cmd: list[str], env: dict[str, str], runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU (user + system) seconds per run. On a loaded machine the wall time waits for a
    core; the CPU time is what the command itself costs, close to its wall time when idle."""
    walls, cpus = [], []
    for _ in range(runs):
        cpu0, started = _children_cpu(), time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        walls.append(time.perf_counter() - started)
        cpus.append(_children_cpu() - cpu0)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed: {done.stderr.strip()}")
    return walls, cpus


def instructions(cmd: list[str], env: dict[str, str]) -> float:
    """Millions of instructions the command executes (user space, the whole process), counted by
    valgrind's cachegrind; string hashing fixed so that two runs of the same code count the same."""
    done = subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null", *cmd],
        env={**env, "PYTHONHASHSEED": "0"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"valgrind {' '.join(cmd)} failed: {done.stderr.strip()[-500:]}")
    return int(found.group(1).replace(",", "")) / 1e6


def setup_catalog(home: Path, database_url: str | None = None) -> str:
    """Three registered adapters (one aliased) and an admin key; returns the key."""
    from registry.catalog.migrate import upgrade
    from registry.service import Registry, register_adapter, set_alias
    from registry.service.admin.keys import create_key
    from registry.settings import Settings
    from registry.synthetic import make_ia3, make_lora

    settings = Settings(home=home, principal="bench", database_url=database_url)
    upgrade(settings.resolved_database_url)
    reg = Registry(settings)
    reg.store.ensure_ready()
    work = home.parent / "adapters"
    register_adapter(reg, str(make_lora(work / "a", seed=1)), "bench/math", task="math")
    register_adapter(reg, str(make_lora(work / "b", seed=2)), "bench/math")
    register_adapter(reg, str(make_ia3(work / "c", seed=3)), "bench/style")
    set_alias(reg, "bench/math@1", "prod")
    return create_key(reg, "bench", "admin")


def serve(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [PEMREG, "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("pemreg serve did not become ready in 60 s")


def report(
    label: str, measured: tuple[list[float], list[float]], target: float | None = None, floor: float = 0.0
) -> None:
    walls, cpus = measured
    median = statistics.median(walls)
    ratio = f"  wall/target {median / target:.2f} (target {target:.1f} s)" if target else ""
    over = f"  floor+{median - floor:.3f} s" if floor else ""
    print(
        f"{label:<44} wall median {median:.3f} s  min {min(walls):.3f} s  "
        f"cpu median {statistics.median(cpus):.3f} s  (n={len(walls)}){over}{ratio}  [load {load()}]"
    )


# What a command may pull in, cheapest first; each measured alone in a fresh interpreter.
IMPORTS = (
    "json",
    "http.client",
    "rich.console",
    "typer",
    "pydantic",
    "registry.client.reads",
    "httpx",
    "registry.client",
    "pydantic_settings",
    "registry.settings",
    "sqlalchemy",
    "registry.catalog.tables",  # the Core tables: what a local read imports of the catalog
    "registry.service.catalog.queries",
    "sqlalchemy.orm",
    "registry.catalog.models",
    "registry.service.context",
    "boto3",
    "prefect",
    "torch",
)


def import_costs(runs: int) -> None:
    """Median wall of `python -c 'import X'` minus `python -c pass`, per module (cumulative: X and
    everything it imports)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    floor = statistics.median(wall([sys.executable, "-c", "pass"], env, runs)[0])
    print(f"import cost over `python -c pass` ({floor:.3f} s), median of {runs}:")
    for module in IMPORTS:
        wall([sys.executable, "-c", f"import {module}"], env, 1)  # writes the bytecode
        walls = wall([sys.executable, "-c", f"import {module}"], env, runs)[0]
        print(f"  {module:<36} {statistics.median(walls) - floor:+.3f} s  [load {load()}]")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--imports", action="store_true", help="also the import cost of each module")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also each command's instruction count under valgrind (independent of the load)",
    )
    parser.add_argument(
        "--database-url",
        help="an empty PostgreSQL database for the catalog (local mode on PostgreSQL); default: SQLite "
        "in the temporary home",
    )
    args = parser.parse_args()
    if args.instructions and shutil.which("valgrind") is None:
        parser.error("--instructions needs valgrind (apt-get install valgrind)")
    if args.imports:
        import_costs(args.runs)
    # PYTHONDONTWRITEBYTECODE (set in some shells and sandboxes) makes every run compile the project's
    # own modules from source again (~0.1 s); a user's install caches their bytecode after the first run,
    # as pip does for every installed package. The warm-up run below writes it.
    base_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PEMREG_", "AWS_")) and k != "PYTHONDONTWRITEBYTECODE"
    }
    with tempfile.TemporaryDirectory(prefix="pemreg-cli-bench-") as tmp:
        home = Path(tmp) / "home"
        key = setup_catalog(home, args.database_url)
        local = {**base_env, "PEMREG_HOME": str(home)}
        if args.database_url:
            local["PEMREG_DATABASE_URL"] = args.database_url
        proc, url = serve(local)
        remote = {
            **base_env,
            "PEMREG_HOME": str(Path(tmp) / "empty"),
            "PEMREG_URL": url,
            "PEMREG_API_KEY": key,
        }
        try:
            catalog = args.database_url.split("@")[-1] if args.database_url else "SQLite"
            print(f"load average before: {load()}  (cpus: {os.cpu_count()}; catalog: {catalog})")
            for mode_env in (local, remote):  # warm the page cache and write the bytecode once
                for cmd in COMMANDS:
                    wall([PEMREG, *cmd], mode_env, 1)
            passes = wall([sys.executable, "-c", "pass"], base_env, args.runs)
            report("python -c pass (the floor)", passes)
            floor = statistics.median(passes[0])
            report(
                "python -c 'import registry.client'",
                wall([sys.executable, "-c", "import registry.client"], base_env, args.runs),
                floor=floor,
            )
            for mode, env in (("local", local), ("remote", remote)):
                for cmd in COMMANDS:
                    label = f"pemreg {' '.join(cmd)} ({mode})"
                    report(label, wall([PEMREG, *cmd], env, args.runs), TARGETS[mode], floor)
            print(f"load average after:  {load()}")
            if args.instructions:
                print("instructions (millions, valgrind cachegrind; PYTHONHASHSEED=0):")
                floor_count = instructions([sys.executable, "-c", "pass"], base_env)
                print(f"  {'python -c pass':<44} {floor_count:8.1f}")
                for mode, env in (("local", local), ("remote", remote)):
                    for cmd in COMMANDS:
                        count = instructions([sys.executable, PEMREG, *cmd], env)
                        print(f"  {'pemreg ' + ' '.join(cmd) + f' ({mode})':<44} {count:8.1f}")
        finally:
            proc.terminate()
            proc.wait(timeout=15)


if __name__ == "__main__":
    main()
