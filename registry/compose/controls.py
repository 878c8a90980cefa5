"""Controls: the composed result beside the exact weighted delta sum, per module and aggregated.

A method can "win" an evaluation by shrinking the delta (a pruned or truncated sum is smaller, and a
smaller delta often regresses less). So every composition reports, per module, for its result R and
the exact weighted sum E = sum_i w_i D_i:
- norm ratio ||R||_F / ||E||_F (1 for `delta_cat`; < 1 means the method shrinks the sum), and
- cosine <R, E>_F / (||R|| ||E||) (1 when R points where the sum points).
Everything comes from the modules' factor inner products (`LoraModule.inner`:
<B1 A1, B2 A2>_F = sum((B1^T B2) * (A1 A2^T)), r x r work; `Ia3Module.inner` on l - 1), with E as
one module of concatenated factors (`exact_sum`), never a d x k matrix: ||R||^2 = <R, R>,
<R, E>, ||E||^2 = <E, E>. LoRA products run in float32 (float64 is 5x slower on CPU; relative error
~1e-6): they are diagnostics, and a streamed and an in-memory run may differ in the last digits.
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
        return {"norm_ratio": self.norm_ratio, "cosine": self.cosine}


def module_control(result: Any, entries: Sequence[Entry], device: torch.device) -> ModuleControl:
    """The control of one composed module `result` against its inputs' exact weighted sum E, built as
    one module of concatenated factors (`exact_sum` of the module type): three inner products of
    rank <= sum r_i, plus each input's own norm (the scale of rounding)."""
    modules = [e.module for e in entries]
    weights = [e.weight for e in entries]
    exact = type(modules[0]).exact_sum(modules, weights)
    return ModuleControl(
        result_sq=result.inner(result, device),
        cross=result.inner(exact, device),
        exact_sq=exact.inner(exact, device),
        own_sq=sum(w * w * m.inner(m, device) for m, w in zip(modules, weights, strict=True)),
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
    return summary
