"""How far the factor-wise `linear` LoRA merge is from the exact weighted delta sum, from factors.

`linear` (Zhang et al.) builds A = sum_j |w_j| A_j and B = sum_i w_i s_i B_i, so its delta is
B A = sum_ij w_i s_i |w_j| B_i A_j, while the exact weighted sum is E = sum_i w_i s_i B_i A_i. The
difference is sum_ij c_ij B_i A_j with c_ij = w_i s_i |w_j| - [i == j] w_i s_i: the cross terms
B_i A_j (i != j) plus the |w_i| rescaling of each input's own term. With a shared initialisation
(the paper's setting) the cross terms nearly cancel the rescaling; with independently initialised
LoRAs they do not, and the result can be far from E.

Norms come from Gram matrices: stacking B = [B_1 .. B_n] (d x R) and A = [A_1; ..; A_n] (R x k),
||B C A||_F^2 = sum((C^T (B^T B) C) * (A A^T)) for the R x R coefficient matrix C = c (x) I_r. Only
d x R and R x k products are formed, never a d x k matrix. Float64, so small differences survive.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from registry.pem import LoraModule

# Relative errors below this fraction of the inputs' own norms are rounding, reported as exact.
_ROUNDING = 1e-10


@dataclass(frozen=True)
class ModuleGrams:
    """One module's Grams over the inputs that have it (ranks must be equal for `linear`)."""

    indices: list[int]  # input positions present in this module
    coeffs: list[float]  # w_i * s_i per present input
    abs_weights: list[float]  # |w_i| per present input
    rank: int
    gram_b: torch.Tensor  # R x R, B^T B of the stacked B factors
    gram_a: torch.Tensor  # R x R, A A^T of the stacked A factors


def module_grams(
    modules: Sequence[LoraModule | None], weights: Sequence[float], device: torch.device
) -> ModuleGrams | None:
    """Grams of one module path across the inputs; None if ranks differ (linear cannot run there)."""
    present = [(i, m) for i, m in enumerate(modules) if m is not None]
    if not present or len({m.r for _, m in present}) != 1:
        return None
    b = torch.cat([m.B.to(device, torch.float64) for _, m in present], dim=1)
    a = torch.cat([m.A.to(device, torch.float64) for _, m in present], dim=0)
    return ModuleGrams(
        indices=[i for i, _ in present],
        coeffs=[weights[i] * m.scale for i, m in present],
        abs_weights=[abs(weights[i]) for i, _ in present],
        rank=present[0][1].r,
        gram_b=b.T @ b,
        gram_a=a @ a.T,
    )


def _squared_norm(grams: ModuleGrams, coeff: torch.Tensor, rows: torch.Tensor) -> float:
    """||sum_ij coeff_ij B_i A_j||_F^2 over the stacked rows `rows` of the Grams."""
    eye = torch.eye(grams.rank, dtype=torch.float64, device=grams.gram_b.device)
    c = torch.kron(coeff, eye)
    gb = grams.gram_b[rows][:, rows]
    ga = grams.gram_a[rows][:, rows]
    return float(((c.T @ gb @ c) * ga).sum())


def squared_errors(grams: ModuleGrams, subset: Sequence[int]) -> tuple[float, float, float]:
    """(||linear - exact||^2, ||exact||^2, sum_i ||w_i s_i B_i A_i||^2) for the inputs in `subset`.

    The last value is the scale against which rounding is judged.
    """
    local = [k for k, i in enumerate(grams.indices) if i in subset]
    if not local:
        return 0.0, 0.0, 0.0
    r = grams.rank
    rows = torch.tensor([k * r + t for k in local for t in range(r)], device=grams.gram_b.device)
    w_s = torch.tensor([grams.coeffs[k] for k in local], dtype=torch.float64, device=rows.device)
    abs_w = torch.tensor([grams.abs_weights[k] for k in local], dtype=torch.float64, device=rows.device)
    exact = torch.diag(w_s)
    diff = torch.outer(w_s, abs_w) - exact
    own = sum(
        _squared_norm(
            grams, torch.tensor([[c]], dtype=torch.float64, device=rows.device), rows[k * r : (k + 1) * r]
        )
        for k, c in enumerate(w_s.tolist())
    )
    return max(_squared_norm(grams, diff, rows), 0.0), max(_squared_norm(grams, exact, rows), 0.0), own


def relative_error(diff_sq: float, exact_sq: float, own_sq: float) -> float | None:
    """sqrt(diff / exact); 0.0 when both are rounding-small; None when the exact sum is ~zero alone."""
    if diff_sq <= _ROUNDING * own_sq:
        return 0.0
    if exact_sq <= _ROUNDING * own_sq:
        return None  # e.g. `x - x`: the exact sum is zero, a relative error is meaningless
    return math.sqrt(diff_sq / exact_sq)
