"""`pemreg compose --wait` wall time (vs the PEFT script doing the same merge) and run overhead.

1. `--cli` (default): four Llama-shaped rank-16 LoRAs (hidden 2048, intermediate 5632, 8 layers,
   q/k/v/o/gate/up/down; as benchmarks/compose_vs_peft.py) registered in a fresh embedded registry
   (SQLite + file store), then `pemreg compose spec.yaml --wait` of their 4-way `delta_svd` merge, timed
   as a user sees it (process start, imports, Prefect flow run against the warm local server, compose,
   upload, register). Then, side by side, the PEFT script a user would write for the same merge (load
   the base and the 4 adapters, `add_weighted_adapter(..., combination_type="svd")` with PEFT's
   defaults, `save_pretrained`), timed the same way (`--skip-peft` leaves it out: it takes minutes).
   Targets: <= 3 s warm, >= 80x the PEFT script.
2. `--overhead`: a warm `pemreg worker` and Prefect server; tiny compositions submitted through the
   `compose/compose` deployment; trigger-to-registered time minus the engine's own compute time.
   Target <= 5 s.

    .venv/bin/python benchmarks/compose_end_to_end.py [--cli] [--overhead] [--layers 8] [--runs 3]
                                                      [--skip-peft]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
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
    started = time.perf_counter()
    local_server.ensure_running(reg.settings.home, PORT)
    print(f"local Prefect server started in {time.perf_counter() - started:.1f} s (once; kept warm)")
    try:
        walls = []
        for run in range(runs):
            spec = root / f"spec{run}.yaml"
            expr = " + ".join(f"{w} * {n}" for w, n in zip(WEIGHTS, names, strict=True))
            spec.write_text(f"name: bench/merged-{run}\nmethod: delta_svd\nrank: 16\nexpression: '{expr}'\n")
            t0 = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-m", "api.cli.main", "compose", str(spec), "--wait", "--json"],
                env=env,
                capture_output=True,
                text=True,
            )
            walls.append(time.perf_counter() - t0)
            assert out.returncode == 0, out.stderr
            view = json.loads(out.stdout)
            assert view["status"] == "succeeded", view
            print(
                f"run {run}: pemreg compose --wait {walls[-1]:.2f} s wall -> {view['output']['name']}@"
                f"{view['output']['version']}"
            )
        best = min(walls)
        print(
            f"pemreg compose --wait (4 x rank-16 delta_svd, {layers} layers): best {best:.2f} s, "
            f"median {sorted(walls)[len(walls) // 2]:.2f} s (target <= 3 s warm)"
        )
    finally:
        local_server.stop(reg.settings.home)
    if with_peft:
        print("PEFT script (add_weighted_adapter svd, defaults), same 4 adapters ...", flush=True)
        peft = peft_wall(root / "base", folders, root / "peft-out")
        print(f"PEFT script: {peft:.1f} s wall; compose --wait {peft / best:.0f}x faster (target >= 80x)")


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
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--skip-peft", action="store_true", help="leave out the PEFT script (minutes)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pemreg-e2e-") as tmp:
        if args.overhead:
            overhead(Path(tmp) / "ovh", args.runs)
        if args.cli or not args.overhead:
            cli_wall(Path(tmp) / "cli", args.layers, args.runs, not args.skip_peft)


if __name__ == "__main__":
    main()
