"""How the real model runs on this CPU: numeric precision and torch thread count, chosen by measurement.

bf16 autocast is ~2.5x faster than fp32 for a training step on CPUs with native bf16 (AVX512-BF16,
AMX), and 30x slower on CPUs without it (a 512 x 576 x 1536 matmul, AVX2 only: 25 ms fp32, 760 ms
bf16). One thread often beats two on a loaded 2-core machine. So both are measured, not guessed: a
small training step in each precision at one thread, then the winner at one and two threads.

An environment that sets OMP_NUM_THREADS=1 has capped the process at one OpenMP thread (the test suite
does, for every process it starts: its two workers fill both cores): the demo keeps to it and does not
time two threads. The timing sees only its own moment: taken while the other worker paused, it chose 2
threads, and the training then ran on a core the other worker had taken back (2026-12-07, the suite's
real-model demo: 240 s of training instead of ~45-100 s).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PRECISIONS = ("fp32", "bf16")


def autocast(precision: str) -> AbstractContextManager[Any]:
    """bf16: CPU autocast (parameters stay fp32); fp32: nothing."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision: one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "fp32":
        return nullcontext()
    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16)


@contextmanager
def threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class Compute:
    threads: int
    precision: str
    timings: dict[str, float]  # "<precision>/<threads>" -> seconds of one small step

    def describe(self) -> str:
        measured = ", ".join(f"{k} {v:.2f} s" for k, v in self.timings.items())
        return f"torch threads {self.threads}, precision {self.precision} (training step: {measured})"


def fastest(base_folder: Path) -> Compute:
    """Time one small training step (1 x 32 tokens, after a warm-up) per setting; keep the fastest."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_folder)
    x = torch.randint(0, 1000, (1, 32))

    def step(precision: str) -> float:
        t = time.perf_counter()
        with autocast(precision):
            model(input_ids=x, labels=x).loss.backward()
        model.zero_grad(set_to_none=True)
        return time.perf_counter() - t

    def timed(precision: str, n: int) -> float:
        with threads(n):
            step(precision)  # warm-up: a new setting pays for allocations and kernels once
            return step(precision)

    timings = {f"{p}/1": timed(p, 1) for p in PRECISIONS}
    precision = min(PRECISIONS, key=lambda p: timings[f"{p}/1"])
    if os.environ.get("OMP_NUM_THREADS", "").strip() == "1":  # capped at one thread: kept (see above)
        return Compute(threads=1, precision=precision, timings=timings)
    timings[f"{precision}/2"] = timed(precision, 2)
    n = 1 if timings[f"{precision}/1"] <= timings[f"{precision}/2"] else 2
    return Compute(threads=n, precision=precision, timings=timings)
