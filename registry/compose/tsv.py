"""TSV-M (Task Singular Vectors merge, Gargiulo et al., CVPR 2025) on LoRA factors.

Per module, each T_i = w_i s_i B_i A_i keeps its top k_i = min(r_i, per_input_rank) singular triplets
(thin SVD from its own factors, lowrank.thin_svd); the kept vectors are stacked, U = [U_1 .. U_n]
(d x K), V = [V_1 .. V_n] (k x K), and orthogonalised by their polar factors (U = P Sigma Q^T ->
P Q^T; V likewise), so the inputs' directions stop interfering. Result: scale * U_o S V_o^T, where S
holds the kept singular values; U_o and V_o are orthonormal, so this is already an SVD of rank K.

The polar factor is computed from the K x K Gram matrix in float64 (U (U^T U)^{-1/2}); where [U_1 ..
U_n] is rank-deficient (the same input twice) it is taken on its range, dropping directions whose
singular value is below THIN_CUTOFF x the largest.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from registry.compose.lowrank import THIN_CUTOFF, thin_svd
from registry.errors import InvalidInput


def kept_total(ranks: Sequence[int], per_input_rank: int | None) -> int:
    """K = sum_i k_i, the output rank, from the inputs' ranks alone."""
    return sum(r if per_input_rank is None else min(r, per_input_rank) for r in ranks)


def check_fits(path: str, ranks: Sequence[int], rows: int, columns: int, per_input_rank: int | None) -> None:
    """K orthonormal directions must fit the module: K <= min(d, k), else refused naming the module."""
    total = kept_total(ranks, per_input_rank)
    if total > min(rows, columns):
        raise InvalidInput(
            f"module {path!r}: tsv keeps K = {total} singular vectors (sum_i min(r_i, per_input_rank)), "
            f"more than min(d, k) = {min(rows, columns)} of its {rows} x {columns} delta; "
            "lower params.per_input_rank or use fewer inputs",
            field="params.per_input_rank",
        )


def polar(m: torch.Tensor) -> torch.Tensor:
    """The orthonormal polar factor P Q^T of m (p x K) = P Sigma Q^T, as m (m^T m)^{-1/2}, float64."""
    wide = m.double()
    values, vectors = torch.linalg.eigh(wide.T @ wide)
    keep = values > values.max().clamp(min=0) * THIN_CUTOFF**2
    basis = vectors[:, keep]
    return wide @ ((basis / values[keep].sqrt()) @ basis.T)


def tsv(
    weighted_b: Sequence[torch.Tensor],
    a_list: Sequence[torch.Tensor],
    *,
    per_input_rank: int | None,
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """B (d x K), A (K x k) of scale * U_o S V_o^T."""
    us, ss, vhs = [], [], []
    for b, a in zip(weighted_b, a_list, strict=True):
        u, s, (vh,) = thin_svd(b, [a])
        k = s.numel() if per_input_rank is None else min(per_input_rank, s.numel())
        us.append(u[:, :k])
        ss.append(s[:k])
        vhs.append(vh[:k])
    if sum(s.numel() for s in ss) == 0:  # every input here has weight 0
        return us[0], vhs[0]
    root = (scale * torch.cat(ss)).sqrt()
    b_out = polar(torch.cat(us, dim=1)) * root
    a_out = (polar(torch.cat(vhs, dim=0).T) * root).T
    return b_out.to(weighted_b[0].dtype), a_out.to(a_list[0].dtype)
