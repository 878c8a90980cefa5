"""KnOTS (Stoica et al., ICLR 2025) on LoRA factors: align the inputs in one shared basis, then merge.

Per module, with T_i = w_i s_i B_i A_i (d x k): the thin SVD of M = [T_1 ... T_n] (d x nk) is
U S V^T; splitting V^T into n blocks V_i^T (R x k) gives T_i = U S V_i^T, every input in the basis
U S. The blocks are merged (`linear`: V*^T = sum_i V_i^T, so the result is the exact sum; `ties`: the
TIES rule of compose/pruning.py on the blocks, weight 1, since the weights are inside T_i) and the
result is U S V*^T, truncated to `rank` by its exact SVD. Singular pairs are signed so that the
largest-magnitude entry of each u_j is positive (see `signed`).

Factor space: M = Bs @ blockdiag(A_1 .. A_n) with Bs = [w_1 s_1 B_1 ... w_n s_n B_n], so its thin SVD
comes from the QR of the stacked factors (lowrank.thin_svd); the largest matrices formed are d x R and
R x nk (R <= sum_i r_i), never a d x k one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from registry.compose.lowrank import thin_svd
from registry.compose.pruning import prune_merge


def signed(u: torch.Tensor, vh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each singular pair signed so that the largest-magnitude entry of u_j is positive (sklearn's
    svd_flip): an entry whose `frequency` votes tie goes to +, so the TIES merge of the blocks is not
    invariant to the arbitrary signs an SVD returns; this convention makes it well defined."""
    if u.shape[1] == 0:
        return u, vh
    signs = u.gather(0, u.abs().argmax(0, keepdim=True)).sign().squeeze(0)
    return u * signs, vh * signs[:, None]


def knots(
    weighted_b: Sequence[torch.Tensor],
    a_list: Sequence[torch.Tensor],
    *,
    merge: str,
    density: float,
    majority_sign: str,
    rank: int | None,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """B (d x k'), A (k' x k) of the merged delta (k' <= rank) and R, the rank of the aligned basis."""
    u, s, vh = thin_svd(torch.cat(list(weighted_b), dim=1), torch.block_diag(*a_list))
    u, vh = signed(u, vh)
    aligned = s.numel()
    if aligned == 0:  # the inputs cancel exactly (or all weights here are 0)
        return u, vh[:, : a_list[0].shape[1]], 0
    blocks = vh.split(a_list[0].shape[1], dim=1)  # V_i^T, R x k each
    if merge == "linear":
        merged = torch.stack(blocks).sum(0)
    else:
        n = len(blocks)
        merged = prune_merge(lambda: blocks, [1.0] * n, "ties", density, majority_sign, [0] * n)
    # U has orthonormal columns, so the SVD of U (S V*^T) is U times the SVD of the small S V*^T
    p, sigma, qh = torch.linalg.svd(s[:, None] * merged.double(), full_matrices=False)
    keep = sigma.numel() if rank is None else min(rank, sigma.numel())
    root = sigma[:keep].sqrt()
    b = u @ (p[:, :keep] * root).to(u.dtype)
    a = (root[:, None] * qh[:keep]).to(u.dtype)
    return b, a, aligned
