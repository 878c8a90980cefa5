"""Issue 15 item 3: the streaming engine on adapters of real size, memory and time vs inputs.

Rank-16 LoRAs shaped for an 8B Llama (hidden 4096, intermediate 14336, 32 layers, kv 1024,
q/k/v/o/gate/up/down; ~168 MB each in fp32), written as PEFT folders straight from the shapes (no
base model: peft's own `LoraConfig.save_pretrained` writes the config, the tensors carry peft's key
names; tests/test_compose_stream.py loads one with peft). They are generated once into a cache
folder (32 x 168 MB = 5.4 GB) and reused.

Each (method, number of inputs) runs in a fresh subprocess, which prints:
- peak RSS growth of `compose_files` (VmHWM after minus VmRSS before, /proc/self/status);
- its time (best of --repeats for up to 8 inputs), and the read+write floor: read every input
  tensor and write an output of the same size through the same I/O path (registry/pem/lazy.py),
  best of 2, page cache warm;
- for up to 8 inputs, the in-memory engine's peak (read_adapter + compose + write_adapter);
- CPU seconds (user + system) of the engine and of the floor, and their ratio: on a shared
  machine wall time depends on the other jobs, CPU time much less.

    .venv/bin/python benchmarks/memory_8b.py                      # 8B shape, 4/8/16/32 inputs
    .venv/bin/python benchmarks/memory_8b.py --shape 2048x8 --counts 4   # compose_vs_peft's shape

Targets (docs/scale.md): peak growth <= 1 GB and flat in the inputs; time <= 2x the floor
for linear / delta_cat, <= 3x for delta_svd.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
RANK, ALPHA = 16, 32
WEIGHTS = [0.4, 0.3, -0.2, 0.5]
# name: (hidden, intermediate, layers, kv width)
SHAPES = {"8b": (4096, 14336, 32, 1024), "2048x8": (2048, 5632, 8, 2048)}


def module_dims(hidden: int, intermediate: int, kv: int) -> dict[str, tuple[int, int]]:
    """(in_features, out_features) of each Llama projection."""
    return {
        "self_attn.q_proj": (hidden, hidden),
        "self_attn.k_proj": (hidden, kv),
        "self_attn.v_proj": (hidden, kv),
        "self_attn.o_proj": (hidden, hidden),
        "mlp.gate_proj": (hidden, intermediate),
        "mlp.up_proj": (hidden, intermediate),
        "mlp.down_proj": (intermediate, hidden),
    }


def write_llama_lora(
    folder: Path, hidden: int, intermediate: int, layers: int, kv: int, seed: int, base: str = "llama-bench"
) -> Path:
    """A PEFT LoRA folder for a Llama of these dimensions, without building the model: the config
    from peft's LoraConfig, tensors under peft's key names (`base_model.model.<path>.lora_A.weight`)."""
    from peft import LoraConfig

    gen = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    for layer in range(layers):
        for name, (fan_in, fan_out) in module_dims(hidden, intermediate, kv).items():
            key = f"base_model.model.model.layers.{layer}.{name}"
            tensors[key + ".lora_A.weight"] = torch.randn(RANK, fan_in, generator=gen) * 0.02
            tensors[key + ".lora_B.weight"] = torch.randn(fan_out, RANK, generator=gen) * 0.02
    folder.mkdir(parents=True, exist_ok=True)
    config = LoraConfig(
        r=RANK,
        lora_alpha=ALPHA,
        target_modules=TARGETS,
        lora_dropout=0.0,
        task_type="CAUSAL_LM",
        base_model_name_or_path=base,
    )
    config.save_pretrained(str(folder))
    save_file(tensors, folder / "adapter_model.safetensors", metadata={"format": "pt"})
    return folder


def cached_adapters(cache: Path, shape: str, n: int) -> list[Path]:
    hidden, intermediate, layers, kv = SHAPES[shape]
    folders = []
    for i in range(n):
        folder = cache / shape / f"adapter{i:02d}"
        if not (folder / "adapter_model.safetensors").is_file():
            started = time.perf_counter()
            write_llama_lora(folder, hidden, intermediate, layers, kv, seed=100 + i)
            print(f"  generated {folder} in {time.perf_counter() - started:.1f} s", flush=True)
        folders.append(folder)
    return folders


# ---- one measurement, in a fresh process ----------------------------------------------------


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def peak_growth_mib(fn: Callable[[], Any]) -> tuple[Any, float, float, float]:
    """(result, seconds, peak RSS growth in MiB over the RSS just before the call, CPU seconds)."""
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    before = status_kib("VmRSS")
    started, cpu = time.perf_counter(), time.process_time()
    result = fn()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return result, seconds, max(status_kib("VmHWM") - before, 0) / 1024, cpu


def floor_seconds(folders: list[Path], output: Path) -> tuple[float, float]:
    """Read every input tensor and write `output`'s bytes through the same reader and writer;
    (wall seconds, CPU seconds)."""
    from registry.pem.lazy import IncrementalWriter, TensorFile

    started, cpu = time.perf_counter(), time.process_time()
    for folder in folders:
        source = TensorFile(folder / "adapter_model.safetensors")
        for key in source.tensors:
            source.read(key)
        source.close()
    planned = TensorFile(output)
    writer = IncrementalWriter(output.with_name("floor.safetensors"), planned.meta(), {"format": "pt"})
    for key, info in planned.tensors.items():
        writer.write({key: torch.empty(info.shape, dtype=info.dtype)})
    writer.commit().unlink()
    return time.perf_counter() - started, time.process_time() - cpu


def one(
    method: str, folders: list[Path], out: Path, threads: int, in_memory: bool, repeats: int
) -> dict[str, Any]:
    from registry.compose import compose
    from registry.compose.stream import compose_files
    from registry.pem import read_adapter, write_adapter

    weights = (WEIGHTS * len(folders))[: len(folders)]
    rank = RANK if method == "delta_svd" else None
    floor_seconds(folders, folders[0] / "adapter_model.safetensors")  # warm the page cache
    runs = [
        peak_growth_mib(lambda: compose_files(folders, weights, out, method, rank=rank, threads=threads))
        for _ in range(repeats)
    ]
    result, seconds, peak = runs[0][0], min(r[1] for r in runs), max(r[2] for r in runs)
    output = out / "adapter_model.safetensors"
    floors = [floor_seconds(folders, output) for _ in range(2)]
    row: dict[str, Any] = {
        "seconds": seconds,
        "cpu": min(r[3] for r in runs),
        "peak_mib": peak,
        "floor": min(f[0] for f in floors),
        "floor_cpu": min(f[1] for f in floors),
        "out_mib": output.stat().st_size / 2**20,
        "retained": result.summary.get("min_retained_energy"),
    }
    if in_memory:

        def run() -> None:
            adapters = [read_adapter(f) for f in folders]
            composed = compose(adapters, weights, method, rank=rank, threads=threads)
            write_adapter(composed.adapter, out)

        _, row["memory_seconds"], row["memory_peak_mib"], _ = peak_growth_mib(run)
    return row


def load() -> float:
    return os.getloadavg()[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="8b")
    ap.add_argument("--counts", default="4,8,16,32", help="numbers of inputs, comma-separated")
    ap.add_argument("--methods", default="linear,delta_cat,delta_svd")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/pem-bench-cache"))
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads for the engine")
    ap.add_argument("--in-memory-up-to", type=int, default=8, help="also time the in-memory engine")
    ap.add_argument("--repeats", type=int, default=2, help="best of, for up to 8 inputs (shared machines)")
    ap.add_argument("--one", nargs=2, metavar=("METHOD", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    counts = [int(c) for c in args.counts.split(",")]

    if args.one:
        method, n = args.one[0], int(args.one[1])
        folders = cached_adapters(args.cache, args.shape, n)
        out = args.cache / "out" / f"{args.shape}-{method}-{n}"
        repeats = args.repeats if n <= 8 else 1
        row = one(method, folders, out, args.threads, n <= args.in_memory_up_to, repeats)
        for stale in out.iterdir():
            stale.unlink()  # delta_cat of 32 inputs is 5 GB: do not keep it
        out.rmdir()
        print(json.dumps(row))
        return

    hidden, intermediate, layers, kv = SHAPES[args.shape]
    print(
        f"shape {args.shape}: hidden {hidden}, intermediate {intermediate}, {layers} layers, kv {kv}, "
        f"rank {RANK}; threads {args.threads}; load {os.getloadavg()[0]:.2f}"
    )
    cached_adapters(args.cache, args.shape, max(counts))
    header = (
        f"{'method':<10} {'inputs':>6} {'seconds':>8} {'floor s':>8} {'ratio':>6} {'cpu s':>7} "
        f"{'floor cpu':>9} {'cpu ratio':>9} {'peak MiB':>9} {'out MiB':>8} {'in-mem s':>9} "
        f"{'in-mem MiB':>10} {'load':>5}"
    )
    print(header)
    for method in args.methods.split(","):
        for n in counts:
            cmd = [sys.executable, __file__, "--shape", args.shape, "--cache", str(args.cache)]
            cmd += ["--threads", str(args.threads), "--in-memory-up-to", str(args.in_memory_up_to)]
            cmd += ["--repeats", str(args.repeats)]
            proc = subprocess.run(
                [*cmd, "--one", method, str(n)], capture_output=True, text=True, check=False
            )
            if proc.returncode != 0:
                print(f"{method:<10} {n:>6} FAILED: {proc.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            mem_s = f"{r['memory_seconds']:.2f}" if "memory_seconds" in r else "-"
            mem_p = f"{r['memory_peak_mib']:.0f}" if "memory_peak_mib" in r else "-"
            ratio, cpu_ratio = r["seconds"] / r["floor"], r["cpu"] / r["floor_cpu"]
            print(
                f"{method:<10} {n:>6} {r['seconds']:>8.2f} {r['floor']:>8.2f} {ratio:>5.1f}x "
                f"{r['cpu']:>7.2f} {r['floor_cpu']:>9.2f} {cpu_ratio:>8.1f}x "
                f"{r['peak_mib']:>9.0f} {r['out_mib']:>8.0f} {mem_s:>9} {mem_p:>10} {load():>5.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
