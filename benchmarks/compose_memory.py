"""Issue 20 item 4: peak RSS of `pemreg compose --wait` (the product, not the engine alone) vs inputs.

A fresh embedded registry (SQLite + file store, a temp PEMREG_HOME, the warm local Prefect server
started once) holds rank-16 Llama-shaped LoRAs (benchmarks/memory_8b.py writes them; cached in
--cache). For each (method, number of inputs) one `pemreg compose SPEC --wait` runs in a fresh
process with PEMREG_WARM_RUNNER=false, so the whole run (submission checks, fetch, interference,
compose, register) happens in that process, and it prints its peak RSS (VmHWM) at exit. Beside it,
the in-memory engine's peak for the same inputs (read_adapter of every input + `compose` +
`write_adapter`, growth over the process's RSS before, as memory_8b.py measures it), and the size of
2 adapters.

    .venv/bin/python benchmarks/compose_memory.py                          # both cases below
    .venv/bin/python benchmarks/compose_memory.py --cases delta_svd:8b:32  # one: method:shape:layers

Targets (docs/scale.md): RSS(8) - RSS(2) < the size of 2 adapters for delta_svd at the 8B shape;
< 120 MiB for ties on the 2048 x 5632 shape. Every figure is printed with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.memory_8b import SHAPES, WEIGHTS, write_llama_lora  # noqa: E402

PORT = 4298
COUNTS = (2, 8)
# ties on the 8B shape would be a dense 4096 x 14336 SVD per module (minutes each on 2 cores); its
# memory is per module, so 2 layers of the 2048 x 5632 shape show the same peak as 8.
DEFAULT_CASES = "delta_svd:8b:32,ties:2048x8:2"
TARGET_TIES_MIB = 120

# `pemreg` in this process, printing the process's peak RSS on the way out (atexit runs after Typer's exit).
SHIM = """
import atexit, sys
def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            sys.stderr.write("PEAK_KIB " + line.split()[1] + "\\n")
atexit.register(peak)
sys.argv = ["pemreg", *sys.argv[1:]]
from api.cli.main import main
main()
"""

IN_MEMORY = """
import json, sys
from pathlib import Path
from benchmarks.memory_8b import peak_growth_mib
from registry.compose import compose
from registry.pem import read_adapter, write_adapter
method, out, weights, *folders = sys.argv[1:]
weights = json.loads(weights)
kwargs = {"rank": 16} if method == "delta_svd" else {"density": 0.5}
def run():
    adapters = [read_adapter(f) for f in folders]
    write_adapter(compose(adapters, weights, method, **kwargs).adapter, out)
_, seconds, peak, _ = peak_growth_mib(run)
print(json.dumps({"seconds": seconds, "peak_mib": peak}))
"""


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def adapters(cache: Path, shape: str, layers: int, n: int) -> list[Path]:
    hidden, intermediate, _, kv = SHAPES[shape]
    out = []
    for i in range(n):
        folder = cache / f"{shape}-L{layers}" / f"adapter{i:02d}"
        if not (folder / "adapter_model.safetensors").is_file():
            write_llama_lora(folder, hidden, intermediate, layers, kv, seed=100 + i)
        out.append(folder)
    return out


def environment(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PEMREG_", "PREFECT_"))}
    env.update(
        PEMREG_HOME=str(root / "home"),
        PEMREG_DATABASE_URL=f"sqlite:///{root / 'db.sqlite'}",
        PEMREG_ARTIFACT_STORE=(root / "store").as_uri(),
        PEMREG_LOCAL_PREFECT_PORT=str(PORT),
        PEMREG_WARM_RUNNER="false",  # the run in the measured process
        PREFECT_HOME=str(root / "prefect-client"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PYTHONPATH=str(Path(__file__).resolve().parents[1]),
    )
    return env


def product_peak(env: dict[str, str], spec: Path) -> tuple[float, float, dict]:
    """(peak RSS MiB, wall s, run view) of one `pemreg compose SPEC --wait --json` process."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", SHIM, "compose", str(spec), "--wait", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    wall = time.perf_counter() - started
    peaks = [int(x.split()[1]) for x in done.stderr.splitlines() if x.startswith("PEAK_KIB ")]
    if done.returncode != 0 or not peaks:
        raise SystemExit(f"pemreg compose failed ({done.returncode}): {done.stderr[-2000:]}")
    view = json.loads(done.stdout)
    assert view["status"] == "succeeded" and not view["cache_hit"], view
    return peaks[-1] / 1024, wall, view


def in_memory_peak(method: str, folders: list[Path], out: Path) -> float:
    weights = (WEIGHTS * len(folders))[: len(folders)]
    done = subprocess.run(
        [sys.executable, "-c", IN_MEMORY, method, str(out), json.dumps(weights), *map(str, folders)],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if done.returncode != 0:
        raise SystemExit(f"in-memory engine failed: {done.stderr[-2000:]}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["peak_mib"])


def case(root: Path, cache: Path, method: str, shape: str, layers: int, in_memory: bool) -> None:
    from flows import local_server
    from registry import service
    from registry.catalog.migrate import upgrade
    from registry.service import Registry
    from registry.settings import Settings

    root.mkdir(parents=True)
    env = environment(root)
    reg = Registry(
        Settings(
            home=Path(env["PEMREG_HOME"]),
            database_url=env["PEMREG_DATABASE_URL"],
            artifact_store=env["PEMREG_ARTIFACT_STORE"],
            principal="bench",
        )
    )
    upgrade(reg.settings.resolved_database_url)
    folders = adapters(cache, shape, layers, max(COUNTS))
    service.add_base_model(reg, "llama-bench", source="llama-bench")
    started = time.perf_counter()
    names = []
    for i, folder in enumerate(folders):
        service.register_adapter(reg, folder, f"bench/a{i:02d}", base_model="llama-bench")
        names.append(f"bench/a{i:02d}")
    print(f"  registered {len(folders)} adapters in {time.perf_counter() - started:.0f} s", flush=True)
    size_mib = (folders[0] / "adapter_model.safetensors").stat().st_size / 2**20
    local_server.ensure_running(reg.settings.home, PORT)
    try:
        rows = {}
        for n in COUNTS:
            terms = " + ".join(f"{w} * {name}" for w, name in zip(WEIGHTS * n, names[:n], strict=False))
            extra = "rank: 16\n" if method == "delta_svd" else "density: 0.5\n"
            spec = root / f"{method}-{n}.yaml"
            spec.write_text(f"name: bench/{method}-{n}\nmethod: {method}\n{extra}expression: '{terms}'\n")
            peak, wall, _ = product_peak(env, spec)
            memory = in_memory_peak(method, folders[:n], root / f"mem-{n}") if in_memory else None
            rows[n] = (peak, memory)
            mem = f"{memory:8.0f}" if memory is not None else "       -"
            print(
                f"{method:<10} {shape:>7} {layers:>6} {n:>6} {peak:>12.0f} {wall:>8.1f} {mem:>14} "
                f"{2 * size_mib:>12.0f}   [load {load()}]",
                flush=True,
            )
        grow = rows[COUNTS[1]][0] - rows[COUNTS[0]][0]
        target = 2 * size_mib if method == "delta_svd" else TARGET_TIES_MIB
        verdict = "meets" if grow < target else "MISSES"
        low, high = rows[COUNTS[0]][1], rows[COUNTS[1]][1]
        mem_grow = f"; in-memory engine {high - low:.0f} MiB" if low is not None and high is not None else ""
        print(
            f"  {method} {shape} x{layers} layers: product RSS({COUNTS[1]}) - RSS({COUNTS[0]}) = "
            f"{grow:.0f} MiB (target < {target:.0f} MiB: {verdict}){mem_grow}",
            flush=True,
        )
    finally:
        local_server.stop(reg.settings.home)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default=DEFAULT_CASES, help="method:shape:layers, comma-separated")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/pem-bench-cache"))
    ap.add_argument("--no-in-memory", action="store_true", help="leave out the in-memory engine's figure")
    args = ap.parse_args()
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    print(
        f"{'method':<10} {'shape':>7} {'layers':>6} {'inputs':>6} {'pemreg MiB':>12} {'wall s':>8} "
        f"{'in-mem eng MiB':>14} {'2 adapters':>12}"
    )
    with tempfile.TemporaryDirectory(prefix="pemreg-mem-") as tmp:
        for number, item in enumerate(args.cases.split(",")):
            method, shape, layers = item.split(":")
            case(Path(tmp) / str(number), args.cache, method, shape, int(layers), not args.no_in_memory)
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")


if __name__ == "__main__":
    main()
