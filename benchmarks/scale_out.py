"""Composition throughput with 1, 2 and 3 `pemreg worker` processes on one Prefect server.

    .venv/bin/python benchmarks/scale_out.py [--workers 1,2,3] [--runs 12] [--limit 2]

The stack of tests/test_scale_out.py, as real processes on loopback: a `prefect server` on PostgreSQL,
SeaweedFS S3, `pemreg serve`, and N workers (each `--limit` runs at once); the `gpu` global
concurrency limit set to 1 guards every compose and evaluate step (PEMREG_GPU_LIMIT=always). For each
N, `--runs` distinct compositions (two tiny LoRAs summed, then a perplexity evaluation) are POSTed at
once; the clock runs from the first POST to the last run's terminal state. Prints runs per minute per
N, the ratio to one worker, how the runs spread over the workers, and the machine's load.

Needs PostgreSQL on 127.0.0.1:5432 (as `make test` ensures). Starts and stops its own SeaweedFS.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from registry.service.compositions import reads as compositions  # noqa: E402
from tests.s3_service import start_seaweedfs, stop_seaweedfs  # noqa: E402
from tests.stack import ProcessStack, open_stack, spec  # noqa: E402


def _round(stack: ProcessStack, first: int, runs: int, timeout: float) -> tuple[float, Counter[str]]:
    headers = {"Authorization": f"Bearer {stack.writer_key}"}
    started = time.perf_counter()
    with httpx.Client(base_url=stack.api_url, headers=headers, timeout=60) as client:

        def post(i: int) -> str:
            r = client.post("/v1/compositions", json=spec(first + i, stack.dataset_uri, retries=0))
            r.raise_for_status()
            return str(r.json()["id"])

        with ThreadPoolExecutor(max_workers=runs) as pool:
            ids = list(pool.map(post, range(runs)))
    deadline = time.monotonic() + timeout
    while True:
        views = [compositions.get(stack.reg, i) for i in ids]
        if all(v.status.terminal for v in views):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"not finished in {timeout:.0f} s: {Counter(v.status.value for v in views)}")
        time.sleep(0.5)
    wall = time.perf_counter() - started
    failed = [(v.id, v.error) for v in views if v.status.value != "succeeded"]
    if failed:
        raise RuntimeError(f"runs failed: {failed[:3]}")
    return wall, Counter(v.worker or "?" for v in views)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", default="1,2,3", help="comma-separated worker counts")
    parser.add_argument("--runs", type=int, default=12, help="compositions per round")
    parser.add_argument("--limit", type=int, default=2, help="concurrent runs per worker")
    parser.add_argument("--timeout", type=float, default=600.0, help="bound on one round (s)")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    with tempfile.TemporaryDirectory(prefix="pemreg-scale-") as tmp:
        root = Path(tmp)
        s3 = start_seaweedfs(root / "s3")
        stack = None
        try:
            stack = open_stack(root / "stack", s3)
            results = []
            started: list[str] = []
            first = 0
            for n in counts:
                for name in started:  # each round starts from idle workers of its own
                    stack.stop(name)
                started = [f"w{n}-{i}" for i in range(n)]
                for name in started:
                    stack.start_worker(name, "--limit", str(args.limit))
                stack.wait_workers_serving(started)
                _round(stack, first + 900, 1, args.timeout)  # warm-up: first imports and model load
                first += 1
                wall, spread = _round(stack, first, args.runs, args.timeout)
                first += args.runs
                load = os.getloadavg()[0]
                results.append((n, wall, spread, load))
                print(
                    f"{n} worker(s): {args.runs} runs in {wall:.1f} s = "
                    f"{60 * args.runs / wall:.1f} runs/min; "
                    f"per worker {sorted(spread.values(), reverse=True)}; load average {load:.2f}",
                    flush=True,
                )
            base = results[0][1]
            print("\nworkers  wall s  runs/min  speed-up vs 1")
            for n, wall, _, _ in results:
                print(f"{n:7d}  {wall:6.1f}  {60 * args.runs / wall:8.1f}  {base / wall:13.2f}x")
            print(f"({os.cpu_count()} CPUs; `gpu` limit 1 around every compose and evaluate step)")
        finally:
            if stack is not None:
                stack.close()
            stop_seaweedfs(root / "s3")


if __name__ == "__main__":
    main()
