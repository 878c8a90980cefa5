"""Controls: the composed result beside the exact weighted delta sum, per module and aggregated.

A method can "win" an evaluation by shrinking the delta (a pruned or truncated sum is smaller, and a
smaller delta often regresses less). So every composition reports, per module, for its result R and
the exact weighted sum E = sum_i w_i D_i:
- norm ratio ||R||_F / ||E||_F (1 for `delta_cat`; < 1 means the method shrinks the sum), and
- cosine <R, E>_F / (||R|| ||E||) (1 when R points where the sum points).
Everything comes from the modules' factor inner products (`LoraModule.inner`:
<B1 A1, B2 A2>_F = sum((B1^T B2) * (A1 A2^T)), r x r work; `Ia3Module.inner` on l - 1), in float64,
never a d x k matrix: ||R||^2 = <R, R>, <R, E> = sum_i w_i <R, D_i>, ||E||^2 = sum_ij w_i w_j <D_i, D_j>.
Reported to 10 significant digits: the figures of a streamed and an in-memory composition agree.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from registry.compose.base import Entry

# ||E||^2 below this fraction of sum_i ||w_i D_i||^2 is rounding (e.g. `x - x`): no ratio is defined.
_ROUNDING = 1e-10


@dataclass(frozen=True)
class ModuleControl:
    """The three Frobenius products of one module; ratio and cosine derive from them."""

    result_sq: float  # ||R||^2
    cross: float  # <R, E>
    exact_sq: float  # ||E||^2
    own_sq: float  # sum_i ||w_i D_i||^2 (the scale of rounding)

    @property
    def defined(self) -> bool:
        return self.exact_sq > _ROUNDING * self.own_sq and self.exact_sq > 0

    @property
    def norm_ratio(self) -> float | None:
        return math.sqrt(max(self.result_sq, 0.0) / self.exact_sq) if self.defined else None

    @property
    def cosine(self) -> float | None:
        if not self.defined or self.result_sq <= 0:
            return None
        return self.cross / math.sqrt(self.result_sq * self.exact_sq)

    def report(self) -> dict[str, float | None]:
        return {"norm_ratio": _digits(self.norm_ratio), "cosine": _digits(self.cosine)}


def _digits(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.10g}")


def module_control(result: Any, entries: Sequence[Entry], device: torch.device) -> ModuleControl:
    """The control of one composed module `result` against its inputs' exact weighted sum."""
    n = len(entries)
    gram = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(i, n):
            gram[i][j] = gram[j][i] = entries[i].module.inner(entries[j].module, device)
    w = [e.weight for e in entries]
    exact_sq = sum(w[i] * w[j] * gram[i][j] for i in range(n) for j in range(n))
    cross = sum(w[i] * result.inner(entries[i].module, device) for i in range(n))
    return ModuleControl(
        result_sq=result.inner(result, device),
        cross=cross,
        exact_sq=exact_sq,
        own_sq=sum(w[i] * w[i] * gram[i][i] for i in range(n)),
    )


def control_summary(controls: Iterable[ModuleControl]) -> dict[str, Any]:
    """Aggregates over the modules where the exact sum is non-zero: median and RMS of the norm ratio,
    median and minimum of the cosine, and the whole-adapter figures (sums over modules, as if the
    modules were one vector)."""
    found = [c for c in controls if c.defined]
    if not found:
        return {"modules": 0}
    ratios = [c.norm_ratio for c in found if c.norm_ratio is not None]
    cosines = [c.cosine for c in found if c.cosine is not None]
    result_sq = sum(c.result_sq for c in found)
    exact_sq = sum(c.exact_sq for c in found)
    summary: dict[str, Any] = {
        "modules": len(found),
        "median_norm_ratio": statistics.median(ratios),
        "rms_norm_ratio": math.sqrt(sum(r * r for r in ratios) / len(ratios)),
        "min_norm_ratio": min(ratios),
        "max_norm_ratio": max(ratios),
        "median_cosine": statistics.median(cosines) if cosines else None,
        "min_cosine": min(cosines) if cosines else None,
        "total_norm_ratio": math.sqrt(max(result_sq, 0.0) / exact_sq),
        "total_cosine": (
            sum(c.cross for c in found) / math.sqrt(result_sq * exact_sq) if result_sq > 0 else None
        ),
    }
    return {k: v if k == "modules" else _digits(v) for k, v in summary.items()}
