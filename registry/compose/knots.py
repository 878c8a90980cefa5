"""KnOTS (Stoica et al., ICLR 2025) on LoRA factors: align the inputs in one shared basis, then merge.

Per module, with T_i = w_i s_i B_i A_i (d x k): the thin SVD of M = [T_1 ... T_n] (d x nk) is
U S V^T; splitting V^T into n blocks V_i^T (R x k) gives T_i = U S V_i^T, every input in the basis
U S. The blocks are merged (`linear`: V*^T = sum_i V_i^T, so the result is the exact sum; `ties`: the
TIES rule of compose/pruning.py on the blocks, weight 1, since the weights are inside T_i) and the
result is U S V*^T, truncated to `rank` by its exact SVD. Singular pairs are signed so that the
largest-magnitude entry of each u_j is positive (see `signed`).

Factor space: M = Bs @ blockdiag(A_1 .. A_n) with Bs = [w_1 s_1 B_1 ... w_n s_n B_n], so its thin SVD
comes from the QR of Bs, one QR per A_i and the SVD of an R x R core (lowrank.thin_svd); the largest
matrices formed are d x R and the n blocks R x k (R <= sum_i r_i), never a d x k one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from registry.compose.lowrank import thin_svd
from registry.compose.pruning import magnitude_mask, ties_merge


def signed(u: torch.Tensor, blocks: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Each singular pair signed so that the largest-magnitude entry of u_j is positive (sklearn's
    svd_flip): an entry whose `frequency` votes tie goes to +, so the TIES merge of the blocks is not
    invariant to the arbitrary signs an SVD returns; this convention makes it well defined."""
    if u.shape[1] == 0:
        return u, blocks
    signs = u.gather(0, u.abs().argmax(0, keepdim=True)).sign().squeeze(0)
    return u * signs, [vh * signs[:, None] for vh in blocks]


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
    u, s, blocks = thin_svd(torch.cat(list(weighted_b), dim=1), a_list)  # V_i^T, R x k each
    u, blocks = signed(u, blocks)
    aligned = s.numel()
    if aligned == 0:  # the inputs cancel exactly (or all weights here are 0)
        return u, blocks[0], 0
    if merge == "linear":
        merged = torch.stack(blocks).sum(0)
    else:
        # the blocks are small and already in memory: trim each once, let the election re-read them
        trimmed = [t * magnitude_mask(t, density) for t in blocks]
        merged = ties_merge(lambda: (t.clone() for t in trimmed), majority_sign)
    # U has orthonormal columns, so U (S V*^T) truncates through the small S V*^T (R x k): the top
    # eigenvectors P_k of its Gram give the projection P_k P_k^T, i.e. its exact truncated SVD
    small = s[:, None] * merged.double()
    values, vectors = torch.linalg.eigh(small @ small.T)
    keep = aligned if rank is None else min(rank, aligned)
    top = vectors[:, -keep:].flip(1)  # descending
    root = values[-keep:].flip(0).clamp(min=0).sqrt().sqrt()  # sigma^(1/2)
    nonzero = root > 0
    b = u @ (top * root).to(u.dtype)
    a = torch.where(nonzero[:, None], (top.T @ small) / root.clamp(min=1e-300)[:, None], 0.0).to(u.dtype)
    return b, a, aligned
