"""Issue 3 item 8: this engine vs PEFT `add_weighted_adapter`, side by side in one run.

Llama-shaped model from config (hidden 2048, intermediate 5632, q/k/v/o/gate/up/down targets), four
rank-16 alpha-32 LoRAs with random weights made by peft. Prints per method: time, peak RSS growth,
relative Frobenius error against the exact weighted delta sum, and ratios to PEFT and to the
read+write floor (read 4 adapter files, write one). Errors are computed from factors (Gram
products in float64), so no dense delta is formed outside PEFT.

    .venv/bin/python benchmarks/compose_vs_peft.py --small      # 1 layer, PEFT svd_full_matrices=False
    .venv/bin/python benchmarks/compose_vs_peft.py              # 8 layers, PEFT defaults: svd takes minutes
    .venv/bin/python benchmarks/compose_vs_peft.py --skip-peft --dense-once   # the engine's rows only

Issue 21's methods (knots, tsv, iso_c at output rank 16 beside delta_svd; della, dense) get rows too;
their "rel. error" is their distance from the exact weighted sum, which they do not aim at.

Threads: on 2 shared cores oversubscribed BLAS threads make many small QR/SVD calls slower, so the
engine is timed with 1 and 2 torch threads and the faster is reported as its figure; PEFT runs with
the process default (2 here), its best case for one large SVD per module.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from peft import LoraConfig, PeftModel, get_peft_model  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

from registry.compose import compose  # noqa: E402
from registry.compose.methods import get_method  # noqa: E402
from registry.pem import read_adapter, write_adapter  # noqa: E402

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
WEIGHTS = [0.4, 0.3, -0.2, 0.5]
RANK, ALPHA = 16, 32


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (Linux) so peaks are per step


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def measured(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, seconds, peak RSS growth in MiB over the RSS before the call)."""
    before = rss_kib("VmRSS")
    reset_peak()
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    return result, seconds, max(rss_kib("VmHWM") - before, 0) / 1024


def build_model(layers: int) -> LlamaForCausalLM:
    cfg = LlamaConfig(
        hidden_size=2048,
        intermediate_size=5632,
        num_hidden_layers=layers,
        num_attention_heads=16,
        num_key_value_heads=16,
        vocab_size=32000,
        max_position_embeddings=256,
    )
    return LlamaForCausalLM(cfg).eval()


def make_adapters(model: LlamaForCausalLM, root: Path, n: int) -> list[Path]:
    cfg = LoraConfig(
        r=RANK, lora_alpha=ALPHA, target_modules=TARGETS, lora_dropout=0.0, task_type="CAUSAL_LM"
    )
    peft_model = get_peft_model(model, cfg)
    folders = []
    for i in range(n):
        gen = torch.Generator().manual_seed(100 + i)
        with torch.no_grad():
            for name, p in peft_model.named_parameters():
                if "lora_" in name:
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
        folder = root / f"adapter{i}"
        peft_model.save_pretrained(folder)
        folders.append(folder)
    peft_model.unload()  # back to the plain base model for PEFT's own timing
    return folders


# ---- error against the exact sum, from factors ------------------------------------------------


def factor_terms(folder_or_tensors: Any, scale: float) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{module: (B * scale, A)} in float64 from an adapter file's tensors."""
    tensors = folder_or_tensors
    out = {}
    for key, a in tensors.items():
        if key.endswith(".lora_A.weight"):
            path = key[: -len(".lora_A.weight")]
            out[path] = (tensors[path + ".lora_B.weight"].double() * scale, a.double())
    return out


def frob_inner(x: tuple[torch.Tensor, torch.Tensor], y: tuple[torch.Tensor, torch.Tensor]) -> float:
    return float(((x[0].T @ y[0]) * (x[1] @ y[1].T)).sum())


def relative_error(result: dict[str, tuple], exact: dict[str, list[tuple]]) -> float:
    """sqrt(sum ||R - D||^2 / sum ||D||^2) with D = sum of factor pairs, all by Gram products."""
    num = den = 0.0
    for path, parts in exact.items():
        dd = sum(frob_inner(p, q) for p in parts for q in parts)
        rd = sum(frob_inner(result[path], q) for q in parts)
        rr = frob_inner(result[path], result[path])
        num += max(rr - 2 * rd + dd, 0.0)
        den += dd
    return (num / den) ** 0.5


SAMPLE = "base_model.model.model.layers.0.self_attn.q_proj"  # 2048 x 2048: a dense SVD in ~1 s


def optimal_error(parts: list[tuple]) -> float:
    """Independent reference for one module: dense sum, full SVD, Eckart-Young tail."""
    dense = sum(b @ a for b, a in parts)
    s = torch.linalg.svdvals(dense)
    return float((s[RANK:].square().sum() / s.square().sum()).sqrt())


def exact_parts(folders: list[Path]) -> dict[str, list[tuple]]:
    parts: dict[str, list[tuple]] = {}
    for folder, w in zip(folders, WEIGHTS, strict=True):
        for path, term in factor_terms(
            load_file(folder / "adapter_model.safetensors"), w * ALPHA / RANK
        ).items():
            parts.setdefault(path, []).append(term)
    return parts


def ours_terms(folder: Path) -> dict[str, tuple]:
    adapter = read_adapter(folder)
    prefix = "base_model.model."
    return {prefix + p: (m.B.double() * m.scale, m.A.double()) for p, m in adapter.modules.items()}


def peft_terms(model: PeftModel, name: str) -> dict[str, tuple]:
    out = {}
    for mod_name, module in model.named_modules():
        if hasattr(module, "lora_A") and name in module.lora_A:
            b = module.lora_B[name].weight.double() * module.scaling[name]
            out[mod_name] = (b, module.lora_A[name].weight.double())
    return out


# ---- runs -----------------------------------------------------------------------------------------


def floor(folders: list[Path], output: dict[str, torch.Tensor], out: Path) -> float:
    """Read the 4 input files and write as many bytes as the method's output (delta_cat's output
    is 4 inputs wide, the others 1), best of 5: what any engine must pay."""
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for f in folders:
            load_file(f / "adapter_model.safetensors")
        save_file(output, out / "floor.safetensors")
        runs.append(time.perf_counter() - start)
    return min(runs)


# Issue 21's methods, each at output rank RANK like delta_svd (tsv: RANK / 4 per input, the paper's
# 1/n share, so K = RANK), with the parameters a user would start from.
NEW_METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    "knots_ties": ("knots", {"rank": RANK, "density": 0.5, "method_params": {"merge": "ties"}}),
    "knots_linear": ("knots", {"rank": RANK}),
    "tsv": ("tsv", {"method_params": {"per_input_rank": RANK // 4}}),
    "iso_c": ("iso_c", {"rank": RANK}),
    "della": ("della", {"rank": RANK, "density": 0.5}),
    # dense methods beside them, at the same density
    "ties": ("ties", {"rank": RANK, "density": 0.5}),
    "breadcrumbs": ("breadcrumbs", {"rank": RANK, "density": 0.5}),
}


def ours(folders: list[Path], label: str, out: Path) -> tuple[Path, dict[str, Any]]:
    """Compose with the engine; `label` is a method or a row of NEW_METHODS."""
    adapters = [read_adapter(f) for f in folders]
    method, kwargs = NEW_METHODS.get(label, (label, {"rank": RANK if label == "delta_svd" else None}))
    # threads=None: the benchmark sets torch's thread count itself to measure 1 vs 2
    result = compose(adapters, WEIGHTS, method, threads=None, **kwargs)
    write_adapter(result.adapter, out)
    return out, result.summary


def out_mib(folder: Path) -> float:
    return (folder / "adapter_model.safetensors").stat().st_size / 2**20


def best_of(fn: Callable[[], Any], repeats: int) -> tuple[Any, float, float]:
    runs = [measured(fn) for _ in range(repeats)]
    best = min(runs, key=lambda r: r[1])
    return best[0], best[1], max(r[2] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="1 layer instead of 8 (runs in under a minute)")
    parser.add_argument("--layers", type=int, default=None)
    parser.add_argument("--adapters", type=int, default=4)
    parser.add_argument("--skip-peft", action="store_true", help="skip only the PEFT rows")
    parser.add_argument(
        "--methods",
        default=",".join(("linear", "delta_cat", "delta_svd", *NEW_METHODS)),
        help="the engine's methods to time, comma-separated (ratios to delta_svd need delta_svd)",
    )
    parser.add_argument(
        "--dense-once",
        action="store_true",
        help="time the dense methods (ties, della, breadcrumbs) once with 1 thread each",
    )
    parser.add_argument(
        "--peft-full-matrices",
        choices=("true", "false"),
        default=None,
        help="PEFT svd_full_matrices (its default true; --small uses false so a run fits in a minute)",
    )
    args = parser.parse_args()
    layers = args.layers or (1 if args.small else 8)
    full_matrices = (args.peft_full_matrices or ("false" if args.small else "true")) == "true"
    folders_n = args.adapters
    default_threads = torch.get_num_threads()
    print(f"layers={layers} adapters={folders_n} rank={RANK} torch threads default={default_threads}")

    root = Path(tempfile.mkdtemp(prefix="pem-bench-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    t0 = time.perf_counter()
    model = build_model(layers)
    folders = make_adapters(model, root, folders_n)
    global WEIGHTS
    WEIGHTS = (WEIGHTS * 4)[:folders_n]
    print(f"setup (model + {folders_n} adapters by peft): {time.perf_counter() - t0:.1f} s")
    exact = exact_parts(folders)

    rows: list[tuple[str, float, float, float | None]] = []
    ours_best: dict[str, float] = {}
    floors: dict[str, float] = {}
    for method in args.methods.split(","):
        per_thread = {}
        method_name = NEW_METHODS.get(method, (method, {}))[0]
        declared = get_method(method_name)
        once = args.dense_once and declared is not None and declared.space == "dense"
        for threads in (1,) if once else (1, 2):
            torch.set_num_threads(threads)
            (out, summary), secs, mem = best_of(
                lambda m=method: ours(folders, m, root / f"ours_{m}"), 1 if once else 3
            )
            per_thread[threads] = (secs, mem)
        per_thread.setdefault(2, per_thread[1])
        torch.set_num_threads(default_threads)
        threads = min(per_thread, key=lambda t: per_thread[t][0])
        secs, mem = per_thread[threads]
        err = None if method == "linear" else relative_error(ours_terms(out), exact)
        ours_best[method] = secs
        floors[method] = floor(folders, load_file(out / "adapter_model.safetensors"), root)
        rows.append(
            (f"read+write floor for {method} (output {out_mib(out):.0f} MiB)", floors[method], 0.0, None)
        )
        label = (
            f"ours {method} (threads 1, one run)"
            if once
            else f"ours {method} (threads {threads}; 1t {per_thread[1][0]:.3f}s, 2t {per_thread[2][0]:.3f}s)"
        )
        rows.append((label, secs, mem, err))
        if method == "delta_svd":
            print(f"ours delta_svd retained energy: min {summary['min_retained_energy']:.4f}")
            print(
                f"optimal rank-{RANK} error on {SAMPLE} by dense SVD: {optimal_error(exact[SAMPLE]):.4e}, "
                f"ours {relative_error(ours_terms(out), {SAMPLE: exact[SAMPLE]}):.4e}"
            )

    peft_times: dict[str, float] = {}
    if not args.skip_peft:
        names = [f"a{i}" for i in range(folders_n)]
        peft_model = PeftModel.from_pretrained(model, folders[0], adapter_name=names[0])
        for name, folder in zip(names[1:], folders[1:], strict=True):
            peft_model.load_adapter(folder, adapter_name=name)
        for ours_name, combo in (("linear", "linear"), ("delta_cat", "cat"), ("delta_svd", "svd")):
            kwargs = {"svd_rank": RANK, "svd_full_matrices": full_matrices} if combo == "svd" else {}
            _, secs, mem = measured(
                lambda c=combo, k=kwargs: peft_model.add_weighted_adapter(
                    names, WEIGHTS, f"m_{c}", combination_type=c, **k
                )
            )
            peft_times[ours_name] = secs
            err = None if combo == "linear" else relative_error(peft_terms(peft_model, f"m_{combo}"), exact)
            label = f"peft {combo}" + (f" (svd_full_matrices={full_matrices})" if combo == "svd" else "")
            rows.append((label, secs, mem, err))
            peft_model.delete_adapter(f"m_{combo}")

    print(f"\n{'step':<62} {'seconds':>9} {'peak MiB':>9} {'rel. error':>11}")
    for label, secs, mem, err in rows:
        err_text = "-" if err is None else f"{err:.3e}"
        print(f"{label:<62} {secs:>9.3f} {mem:>9.0f} {err_text:>11}")
    print()
    for method in (m for m in NEW_METHODS if m in ours_best and "delta_svd" in ours_best):
        print(f"ours {method}: {ours_best[method] / ours_best['delta_svd']:.2f}x delta_svd's time")
    for method, secs in ours_best.items():
        line = f"ours {method}: {secs / floors[method]:.1f}x its read+write floor"
        if method in peft_times:
            line += f", {peft_times[method] / secs:.0f}x faster than peft"
        print(line)


if __name__ == "__main__":
    main()
