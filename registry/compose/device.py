"""Compute device (chosen once per process: CUDA when present, else CPU) and CPU thread policy.

Threads: the engine's CPU work is many small GEMMs and R x R factorisations per module. Measured
on 2 shared cores (benchmarks/compose_vs_peft.py): 1 intra-op thread is fastest; with 2 threads,
a co-tenant on the other core made the same delta_svd merge up to 8x slower (oversubscription).
So `compose` runs with 1 thread unless told otherwise, and restores the caller's setting.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import torch

DEFAULT_CPU_THREADS = 1


@cache
def compute_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Temporarily set torch's intra-op thread count (process-wide; None leaves it alone)."""
    previous = torch.get_num_threads()
    if count is None or count == previous:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
