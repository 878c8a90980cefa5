"""`pemreg compose --wait` wall time on the embedded default (vs the PEFT script doing the same merge).

1. `--cli` (default): four Llama-shaped rank-16 LoRAs (hidden 2048, intermediate 5632, 8 layers,
   q/k/v/o/gate/up/down; as benchmarks/compose_vs_peft.py) and two tiny ones registered in a fresh
   embedded registry (SQLite + file store); the warm local runner and the warm local Prefect server
   started once (kept warm, as for a user after their first command; one warm-up run). Then, timed as a
   user sees it (a fresh `pemreg` process each time, to exit):
   - `pemreg compose spec.yaml --wait` of the 4-way `delta_svd` merge (new output each run), with the
     engine's own seconds (provenance) and the rest (the command, the runner, Prefect, upload, catalog);
   - a small two-adapter merge (two tiny LoRAs, `linear`);
   - a cached spec (the first 4-way spec again: answered from the catalog);
   - `python -c pass` as the floor of any command.
   Then, side by side, the PEFT script a user would write for the 4-way merge (load the base and the 4
   adapters, `add_weighted_adapter(..., combination_type="svd")` with PEFT's defaults,
   `save_pretrained`), timed the same way (`--skip-peft` leaves it out: it takes minutes).
   Targets: 4-way <= 3 s median and >= 80x the PEFT script; two-adapter <= 2 s; cached <= 1.0 s.
2. `--overhead`: a warm `pemreg worker` and Prefect server; tiny compositions submitted through the
   `compose/compose` deployment; trigger-to-registered time minus the engine's own compute time.
   Target <= 5 s.

Every figure is printed with the load average (2 shared cores: other jobs move wall times by 2-5x).

    .venv/bin/python benchmarks/compose_end_to_end.py [--cli] [--overhead] [--layers 8] [--runs 5]
                                                      [--skip-peft]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.compose_vs_peft import WEIGHTS, build_model, make_adapters  # noqa: E402
from flows import local_server  # noqa: E402
from registry import service  # noqa: E402
from registry.catalog.migrate import upgrade  # noqa: E402
from registry.service import Registry  # noqa: E402
from registry.settings import Settings  # noqa: E402
from registry.synthetic import make_lora, save_tiny_base  # noqa: E402

PORT = 4299

# What a PEFT user runs for the same merge; argv: base folder, output folder, weights (JSON), adapters.
PEFT_SCRIPT = """
import json, sys
from peft import PeftModel
from transformers import AutoModelForCausalLM
base_dir, out, weights, *adapters = sys.argv[1:]
weights = json.loads(weights)
base = AutoModelForCausalLM.from_pretrained(base_dir)
model = PeftModel.from_pretrained(base, adapters[0], adapter_name="a0")
for i, folder in enumerate(adapters[1:], 1):
    model.load_adapter(folder, adapter_name=f"a{i}")
names = [f"a{i}" for i in range(len(adapters))]
model.add_weighted_adapter(names, weights, "merged", combination_type="svd")
model.save_pretrained(out, selected_adapters=["merged"])
"""


def _registry(root: Path) -> tuple[Registry, dict[str, str]]:
    reg = Registry(
        Settings(
            home=root / "home",
            database_url=f"sqlite:///{root / 'db.sqlite'}",
            artifact_store=(root / "store").as_uri(),
            principal="bench",
        )
    )
    upgrade(reg.settings.resolved_database_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PEMREG_", "PREFECT_"))}
    env.update(
        PEMREG_HOME=str(reg.settings.home),
        PEMREG_DATABASE_URL=reg.settings.resolved_database_url,
        PEMREG_ARTIFACT_STORE=reg.settings.resolved_artifact_store,
        PEMREG_LOCAL_PREFECT_PORT=str(PORT),
        PREFECT_HOME=str(root / "prefect-client"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
    )
    return reg, env


def peft_wall(base: Path, folders: list[Path], out: Path) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PEFT_SCRIPT, str(base), str(out), json.dumps(WEIGHTS), *map(str, folders)],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "merged" / "adapter_model.safetensors").exists(), sorted(out.rglob("*"))
    return wall


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def pemreg(env: dict[str, str], *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "api.cli.main", *args], env=env, capture_output=True, text=True, timeout=600
    )
    wall = time.perf_counter() - t0
    assert done.returncode == 0, (args, done.stderr)
    return wall, done


def compose_wall(env: dict[str, str], spec: Path, reg: Registry) -> tuple[float, float, dict]:
    """(wall s, engine s from the output's provenance, the run's view) of one `compose --wait`."""
    wall, done = pemreg(env, "compose", str(spec), "--wait", "--json")
    view = json.loads(done.stdout)
    assert view["status"] == "succeeded", view
    engine = 0.0
    if not view["cache_hit"]:
        folder = spec.with_suffix(".out")
        service.download_version(reg, f"{view['output']['name']}@{view['output']['version']}", folder)
        engine = json.loads((folder / "provenance.json").read_text())["method"]["seconds"]
    return wall, engine, view


def line(label: str, walls: list[float], target: float | None, extra: str = "") -> None:
    median = statistics.median(walls)
    goal = f"  target {target:.1f} s ({median / target:.2f}x of it)" if target else ""
    print(
        f"{label:<44} median {median:6.2f} s  best {min(walls):6.2f} s  (n={len(walls)}){goal}{extra}"
        f"  [load {load()}]",
        flush=True,
    )


def cli_wall(root: Path, layers: int, runs: int, with_peft: bool) -> None:
    reg, env = _registry(root)
    print(f"building the Llama-shaped model ({layers} layers) and 4 rank-16 LoRAs with peft ...", flush=True)
    model = build_model(layers)
    folders = make_adapters(model, root / "adapters", 4)
    if with_peft:
        model.save_pretrained(root / "base")
    del model
    service.add_base_model(reg, "llama-bench", source="llama-bench")
    names = []
    for i, folder in enumerate(folders):
        service.register_adapter(reg, folder, f"bench/lora{i}", base_model="llama-bench")
        names.append(f"bench/lora{i}")
    service.add_base_model(reg, "tiny-llama", source=str(save_tiny_base(root / "tiny-base")))
    service.register_adapter(reg, make_lora(root / "tiny-a", seed=1), "small/a")
    service.register_adapter(reg, make_lora(root / "tiny-b", seed=2), "small/b")
    expr = " + ".join(f"{w} * {n}" for w, n in zip(WEIGHTS, names, strict=True))

    def spec(name: str, text: str) -> Path:
        path = root / f"{name}.yaml"
        path.write_text(text)
        return path

    started = time.perf_counter()
    local_server.ensure_running(reg.settings.home, PORT)
    print(f"local Prefect server started in {time.perf_counter() - started:.1f} s (once; kept warm)")
    wall, _ = pemreg(env, "runner", "start")
    print(f"local runner started in {wall:.1f} s (once; kept warm)")
    try:
        warm = compose_wall(
            env, spec("warm", "name: small/warm\nexpression: '0.3 * small/a + small/b'\n"), reg
        )
        print(f"warm-up run (the runner's first flow run): {warm[0]:.2f} s")
        floor = [pemreg(env, "--version")[0] for _ in range(runs)]
        passes = []
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            passes.append(time.perf_counter() - t0)
        line("python -c pass (floor of any command)", passes, None)
        line("pemreg --version", floor, None)
        fourway, engines = [], []
        for run in range(runs):
            text = f"name: bench/merged-{run}\nmethod: delta_svd\nrank: 16\nexpression: '{expr}'\n"
            wall, engine, view = compose_wall(env, spec(f"four{run}", text), reg)
            fourway.append(wall)
            engines.append(engine)
        line(
            f"compose --wait, 4 x rank-16 delta_svd, {layers} layers",
            fourway,
            3.0,
            f"  engine median {statistics.median(engines):.2f} s",
        )
        small = []
        for run in range(runs):
            text = f"name: small/m{run}\nexpression: '0.{run + 1} * small/a + 0.5 * small/b'\n"
            small.append(compose_wall(env, spec(f"small{run}", text), reg)[0])
        line("compose --wait, two tiny LoRAs, linear", small, 2.0)
        cached = [compose_wall(env, root / "four0.yaml", reg) for _ in range(runs)]
        assert all(view["cache_hit"] for _, _, view in cached)
        line("compose --wait, a cached spec", [w for w, _, _ in cached], 1.0)
    finally:
        pemreg(env, "runner", "stop")
        local_server.stop(reg.settings.home)
    if with_peft:
        print("PEFT script (add_weighted_adapter svd, defaults), same 4 adapters ...", flush=True)
        peft = peft_wall(root / "base", folders, root / "peft-out")
        median = statistics.median(fourway)
        print(
            f"PEFT script: {peft:.1f} s wall; compose --wait median {median:.2f} s: {peft / median:.0f}x "
            f"faster (target >= 80x)  [load {load()}]"
        )


def overhead(root: Path, runs: int) -> None:
    reg, env = _registry(root)
    service.add_base_model(reg, "tiny-llama", source=str(save_tiny_base(root / "base")))
    service.register_adapter(reg, make_lora(root / "a", seed=1), "t/a")
    service.register_adapter(reg, make_lora(root / "b", seed=2), "t/b")
    api = local_server.ensure_running(reg.settings.home, PORT)
    env.update(PREFECT_API_URL=api, PREFECT_RUNNER_POLL_FREQUENCY="1")
    worker = subprocess.Popen(
        [sys.executable, "-m", "api.cli.main", "worker"],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.environ.update(env)
    from flows.runners import install
    from registry.service.compositions import runs
    from registry.spec import load_spec

    install(reg.settings, "background")

    try:
        time.sleep(8)  # let the worker register its deployments and start polling
        figures = []
        for run in range(runs + 1):
            spec = load_spec(f"name: t/ovh-{run}\nexpression: '{0.1 * (run + 1):.1f} * t/a + t/b'\n")
            t0 = time.perf_counter()
            view = runs.start(reg, spec, "api", runner="deployment")
            view = runs.wait(reg, view.id, timeout=120)
            total = time.perf_counter() - t0
            assert view.status == "succeeded", view
            folder = root / f"out{run}"
            service.download_version(reg, f"{view.output.name}@{view.output.version}", folder)
            compute = json.loads((folder / "provenance.json").read_text())["method"]["seconds"]
            if run == 0:
                print(f"warm-up run: {total:.2f} s (first flow run on this worker)")
                continue
            figures.append(total - compute)
            print(
                f"run {run}: trigger -> registered {total:.2f} s, compute {compute:.3f} s, "
                f"overhead {total - compute:.2f} s"
            )
        print(
            f"trigger-to-registered overhead beyond compute: best {min(figures):.2f} s, "
            f"median {sorted(figures)[len(figures) // 2]:.2f} s (target <= 5 s)"
        )

    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        local_server.stop(reg.settings.home)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cli", action="store_true")
    ap.add_argument("--overhead", action="store_true")
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--skip-peft", action="store_true", help="leave out the PEFT script (minutes)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pemreg-e2e-") as tmp:
        if args.overhead:
            overhead(Path(tmp) / "ovh", args.runs)
        if args.cli or not args.overhead:
            cli_wall(Path(tmp) / "cli", args.layers, args.runs, not args.skip_peft)


if __name__ == "__main__":
    main()
