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

The core overlap costs what a dense method's pass costs (each input's dense delta and a top-k over it,
per module: 87 s for 4 rank-16 inputs of 8 Llama-2048 layers on one core, where the subspace overlap
takes under a second), so the flow and the dry run compute it only when the spec gives a `density`
(every method of the run then gets it, whatever it is); without one it is null.
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
        found = {i: m for i, m in enumerate(modules) if m is not None}
        present = sorted(found)
        bases = {i: m.column_basis(device) for i, m in found.items()}
        cores: dict[int, PackedCore] = {}
        if self.core_density is not None:
            for i, m in found.items():  # one dense delta at a time; the masks kept as bits
                cores[i] = PackedCore.of(
                    core_mask(core_scores(weights[i] * m.delta(device), None), self.core_density)
                )
        for a, i in enumerate(present):
            for j in present[a + 1 :]:
                self.subspace.setdefault((i, j), []).append(subspace_overlap(bases[i], bases[j]))
                if cores:
                    self.core.setdefault((i, j), []).append(overlap_fraction(cores[i], cores[j]))

    def subspace_of(self, i: int, j: int) -> tuple[float, float]:
        """(RMS, mean) of the pair's subspace overlap over the modules both have."""
        return _rms_mean(self.subspace.get((i, j), []))

    def core_of(self, i: int, j: int) -> tuple[float | None, float | None]:
        """(RMS, mean) of the pair's core overlap; None when no core density was given."""
        if self.core_density is None:
            return None, None
        return _rms_mean(self.core.get((i, j), []))


def _rms_mean(values: list[float]) -> tuple[float, float]:
    if not values:
        return 0.0, 0.0
    return math.sqrt(sum(v * v for v in values) / len(values)), sum(values) / len(values)
