"""Iso-C (Marczak et al., 2025) on LoRA factors: the exact sum's top singular directions, flat spectrum.

Per module: the thin SVD of sum_i T_i = U S V^T (T_i = w_i s_i B_i A_i), computed from the stacked
factors (lowrank.thin_svd: QR of [w_1 s_1 B_1 ... ] and [A_1; ...], SVD of the small core); k = `rank`
(at most the R singular values the thin SVD keeps); s_bar = the mean of the top k singular values.
Result: scale * s_bar * U_k V_k^T, every kept direction with the same strength, so no input's
dominant directions drown the others'.
"""

from __future__ import annotations

import math

import torch

from registry.compose.lowrank import thin_svd


def iso_c(
    bs: torch.Tensor, as_: torch.Tensor, *, rank: int, scale: float
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """B (d x k), A (k x k_in) of scale * s_bar * U_k V_k^T, and s_bar (0 for an exact zero sum)."""
    u, s, (vh,) = thin_svd(bs, [as_])
    k = min(rank, s.numel())
    s_bar = float(s[:k].mean()) if k else 0.0
    root = math.sqrt(scale * s_bar)
    return u[:, :k] * root, vh[:k] * root, s_bar
