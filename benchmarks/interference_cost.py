"""What the linear cross-term error adds to the interference report (dry run and compose flow).

Llama-shaped modules (hidden 2048, intermediate 5632, 8 layers, q/k/v/o/gate/up/down), N rank-16
alpha-32 LoRAs with random factors, built in memory. Prints the report's wall time with the cross
terms (equal ranks: cosines and cross terms from one set of Gram blocks) and without them (the
per-pair inner products alone), best of --repeat, one torch thread, and their ratio.

    .venv/bin/python benchmarks/interference_cost.py [--inputs 4] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

import torch

import registry.compose.interference as interference
from registry.compose.base import get_composer
from registry.pem import LoraModule, PemAdapter

SHAPES = {
    "q_proj": (2048, 2048),
    "k_proj": (2048, 2048),
    "v_proj": (2048, 2048),
    "o_proj": (2048, 2048),
    "gate_proj": (5632, 2048),
    "up_proj": (5632, 2048),
    "down_proj": (2048, 5632),
}


def adapter(seed: int, layers: int = 8, r: int = 16) -> PemAdapter:
    gen = torch.Generator().manual_seed(seed)
    modules = {
        f"model.layers.{layer}.{name}": LoraModule(
            A=torch.randn(r, k, generator=gen), B=torch.randn(d, r, generator=gen), alpha=32.0
        )
        for layer in range(layers)
        for name, (d, k) in SHAPES.items()
    }
    return PemAdapter(pem_type="lora", config={"peft_type": "LORA", "r": r}, modules=modules, dtype="float32")


def best(fn: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--inputs", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    adapters = [adapter(i) for i in range(args.inputs)]
    weights = [1.0 / args.inputs] * args.inputs
    report = interference.interference_report(adapters, weights, check_base_model=False, method="linear")
    with_cross = best(
        lambda: interference.interference_report(adapters, weights, check_base_model=False, method="linear"),
        args.repeat,
    )
    # Without: the composer declares no cross terms, so the report takes the per-pair inner products
    # alone, the path (IA)3 and mixed-rank LoRA inputs take.
    composer = type(get_composer(adapters[0].pem_type))
    composer.cross_terms = False
    try:
        without = best(
            lambda: interference.interference_report(adapters, weights, check_base_model=False), args.repeat
        )
    finally:
        composer.cross_terms = True
    print(f"{args.inputs} inputs x {len(adapters[0].modules)} modules, rank 16, 1 thread")
    print(f"interference report with linear cross terms: {with_cross:.3f} s")
    print(f"without (per-pair inner products only):      {without:.3f} s")
    print(
        f"ratio: {with_cross / without:.2f}x; linear_cross_term_error = {report.linear_cross_term_error:.3f}"
    )


if __name__ == "__main__":
    main()
