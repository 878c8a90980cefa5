"""Two diagnostics per pair of inputs beside the RMS cosine of the interference report.

- Subspace overlap: the mean squared cosine of the principal angles between the column spaces of
  D_i and D_j. With orthonormal bases U_i (d x r_i), U_j (d x r_j) (each module's `column_basis`:
  LoRA from its factors, (IA)3 its unit delta), the cosines are the singular values of U_i^T U_j, so
  their mean square is ||U_i^T U_j||_F^2 / min(r_i, r_j): 1 when one space contains the other, 0 when
  orthogonal, r / d for random subspaces. It ignores the row spaces and the magnitudes: two deltas can
  write into the same output directions (high overlap) while their cosine is near 0.
- Core overlap: the core_merge overlap |C_i & C_j| / min(|C_i|, |C_j|) of the top `density` fraction of
  |w_i D_i| (compose/core_merge.py's own mask and count), for any method: how much the inputs'
  largest entries collide, which is what TIES-style trimming and core_merge's isolation act on.
Both are aggregated per pair as RMS and mean over the modules both inputs have.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from registry.compose.core_merge import PackedCore, core_mask, core_scores, overlap_fraction


def subspace_overlap(u_i: torch.Tensor, u_j: torch.Tensor) -> float:
    """Mean squared cosine of the principal angles between the spans of two orthonormal bases."""
    smaller = min(u_i.shape[1], u_j.shape[1])
    if smaller == 0:
        return 0.0
    return float((u_i.T @ u_j).square().sum()) / smaller


class PairOverlaps:
    """Collects both overlaps module by module (one module of every input at a time)."""

    def __init__(self, core_density: float | None) -> None:
        self.core_density = core_density
        self.subspace: dict[tuple[int, int], list[float]] = {}
        self.core: dict[tuple[int, int], list[float]] = {}

    def add(self, modules: Sequence[Any | None], weights: Sequence[float], device: torch.device) -> None:
        present = [i for i, m in enumerate(modules) if m is not None]
        bases = {i: modules[i].column_basis(device) for i in present}
        cores: dict[int, PackedCore] = {}
        if self.core_density is not None:
            for i in present:  # one dense delta at a time; the masks kept as bits
                cores[i] = PackedCore.of(
                    core_mask(core_scores(weights[i] * modules[i].delta(device), None), self.core_density)
                )
        for a, i in enumerate(present):
            for j in present[a + 1 :]:
                self.subspace.setdefault((i, j), []).append(subspace_overlap(bases[i], bases[j]))
                if cores:
                    self.core.setdefault((i, j), []).append(overlap_fraction(cores[i], cores[j]))

    def summary(self, i: int, j: int) -> dict[str, float | None]:
        sub = self.subspace.get((i, j), [])
        core = self.core.get((i, j), [])
        return {
            "subspace_overlap": _rms(sub) or 0.0,
            "mean_subspace_overlap": sum(sub) / len(sub) if sub else 0.0,
            "core_overlap": _rms(core) if self.core_density is not None else None,
            "mean_core_overlap": (
                (sum(core) / len(core) if core else 0.0) if self.core_density is not None else None
            ),
        }


def _rms(values: list[float]) -> float | None:
    return math.sqrt(sum(v * v for v in values) / len(values)) if values else 0.0
