"""Issue 9 figure: `pemreg compose SPEC --wait` of a cached spec vs the same spec uncached.

A fresh embedded registry (SQLite + file store) with a tiny base and two rank-4 LoRAs; the warm local
Prefect server is started first, so the uncached figure is a warm flow run, not the server's start-up.
Then, timed as a user sees it (process start, imports, work, exit):
- uncached: `pemreg compose spec-N.yaml --wait` of a new spec each time (a Prefect flow run);
- cached: `pemreg compose spec-0.yaml --wait` again (answered from the catalog: no flow run).
Target: cached <= 1.5 s. The cached command must import neither torch nor prefect (checked here with
`python -X importtime`).

    .venv/bin/python benchmarks/compose_cached.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.compose_end_to_end import _registry  # noqa: E402
from flows import local_server  # noqa: E402
from registry import service  # noqa: E402
from registry.synthetic import make_lora, save_tiny_base  # noqa: E402

CLI = [sys.executable, "-m", "api.cli.main"]


def _compose(env: dict[str, str], spec: Path, *extra: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.perf_counter()
    done = subprocess.run(
        [*CLI, "compose", str(spec), "--wait", *extra], env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"compose failed: {done.stderr.strip()}")
    return seconds, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pemreg-bench-cached-") as tmp:
        root = Path(tmp)
        reg, env = _registry(root)
        service.add_base_model(reg, "tiny-llama", source=str(save_tiny_base(root / "base")))
        service.register_adapter(reg, make_lora(root / "a", seed=1), "t/a")
        service.register_adapter(reg, make_lora(root / "b", seed=2), "t/b")
        local_server.ensure_running(reg.settings.home, int(env["PEMREG_LOCAL_PREFECT_PORT"]))
        try:
            specs = []
            for i in range(args.runs + 1):
                spec = root / f"spec-{i}.yaml"
                spec.write_text(f"name: t/sum-{i}\nexpression: '{0.1 * (i + 1):.1f} * t/a + t/b'\n")
                specs.append(spec)
            _compose(env, specs[0])  # warms the fetch cache; not counted
            uncached = [_compose(env, s)[0] for s in specs[1:]]
            cached = []
            for _ in range(args.runs):
                seconds, done = _compose(env, specs[0], "--json")
                assert '"cache_hit": true' in done.stdout, done.stdout
                cached.append(seconds)
            probe = subprocess.run(
                [
                    sys.executable,
                    "-X",
                    "importtime",
                    "-m",
                    "api.cli.main",
                    "compose",
                    str(specs[0]),
                    "--wait",
                ],
                env=env,
                capture_output=True,
                text=True,
            )
            imported = {line.split("|")[-1].strip() for line in probe.stderr.splitlines() if "|" in line}
            heavy = sorted(m for m in ("torch", "prefect", "transformers", "peft") if m in imported)
        finally:
            local_server.stop(reg.settings.home)
    u, c = statistics.median(uncached), statistics.median(cached)
    print(f"uncached `pemreg compose --wait` (warm Prefect server): median {u:.2f} s  runs {uncached}")
    print(f"cached   `pemreg compose --wait`:                       median {c:.2f} s  runs {cached}")
    print(
        f"cached / uncached = {c / u:.2f}  (uncached is {u / c:.1f}x the cached wall); target cached <= 1.5 s"
    )
    print(f"heavy modules imported on the cached path: {heavy or 'none'}")


if __name__ == "__main__":
    main()
