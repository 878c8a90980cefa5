"""How far the factor-wise `linear` LoRA merge is from the exact weighted delta sum, from factors.

`linear` (Zhang et al.) builds A = sum_j |w_j| A_j and B = sum_i w_i s_i B_i, so its delta is
L = sum_ij w_i s_i |w_j| B_i A_j, while the exact weighted sum is E = sum_i w_i s_i B_i A_i. The
difference holds the cross terms B_i A_j (i != j) plus the |w_i| rescaling of each input's own term.
With a shared initialisation (the paper's setting) they nearly cancel; with independently initialised
LoRAs they do not, and L can be far from E.

Everything comes from r x r Gram blocks G_B[i,k] = (s_i B_i)^T (s_k B_k) and G_A[j,l] = A_j A_l^T
(the interference cosines use the same blocks), never from a d x k matrix:
    ||L - E||^2 = ||L||^2 - 2 <L, E> + ||E||^2,
    ||L||^2  = sum((sum_ik w_i w_k G_B[i,k]) * (sum_jl |w_j| |w_l| G_A[j,l])),
    <L, E>   = sum_i w_i sum((sum_k w_k G_B[k,i]) * (sum_j |w_j| G_A[j,i])),
    ||E||^2  = sum_ik w_i w_k sum(G_B[i,k] * G_A[i,k]).
The scales are folded into B, so the coefficients do not depend on the module: per pair, the 16
numbers sum(G_B[i,k] * G_A[j,l]) (i, j, k, l in the pair) are summed over modules first. The d-sized
products run in float32 (they are the cost), blockwise for i <= k; the rest in float64. An input
missing a module contributes zero factors there, as in the composition itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from registry.pem import LoraModule

# With float32 Gram products, anything below this fraction of the inputs' own squared norms is
# rounding: reported as exact (a relative error under ~0.3 %).
_ROUNDING = 1e-5


@dataclass
class CrossTermTotals:
    """Sums over modules: per pair (p, q) the 2x2x2x2 table T[i,k,j,l] = sum(G_B[i,k] * G_A[j,l]) of
    the pair's members, and for all inputs ||L||^2, <L, E>, ||E||^2 and sum_i ||w_i D_i||^2."""

    n: int
    weights: list[float]
    pairs: list[tuple[int, int]]
    pair_tables: torch.Tensor  # (P, 2, 2, 2, 2) float64
    overall: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0])


def accumulate(
    totals: CrossTermTotals, modules: Sequence[LoraModule | None], device: torch.device
) -> torch.Tensor | None:
    """Add one module path's contribution. Returns the inputs' delta inner products there (n x n,
    <s_i B_i A_i, s_k B_k A_k>_F; the interference cosines use them), or None if ranks differ
    (linear refuses such inputs)."""
    present = [m for m in modules if m is not None]
    if not present or len({m.r for m in present}) != 1:
        return None
    n, r = totals.n, present[0].r
    gb = torch.zeros(n, n, r, r, dtype=torch.float64, device=device)
    ga = torch.zeros(n, n, r, r, dtype=torch.float64, device=device)
    factors = [
        None if m is None else (m.scale, m.B.to(device, torch.float32), m.A.to(device, torch.float32))
        for m in modules
    ]
    for i, fi in enumerate(factors):  # blocks i <= k only: the Grams are symmetric
        for k in range(i, n):
            fk = factors[k]
            if fi is None or fk is None:
                continue  # a missing module contributes zero factors
            gb[i, k] = ((fi[1].T @ fk[1]) * (fi[0] * fk[0])).double()
            ga[i, k] = (fi[2] @ fk[2].T).double()
            if k != i:
                gb[k, i], ga[k, i] = gb[i, k].T, ga[i, k].T
    # Contractions as small matmuls over flattened blocks (einsum's dispatch costs more than the math).
    w = torch.tensor(totals.weights, dtype=torch.float64, device=gb.device)
    aw, rr = w.abs(), r * r
    flat_b, flat_a = gb.reshape(n * n, rr), ga.reshape(n * n, rr)
    sum_b = torch.outer(w, w).reshape(-1) @ flat_b  # B_lin^T B_lin, flattened
    sum_a = torch.outer(aw, aw).reshape(-1) @ flat_a  # A_lin A_lin^T
    lin_b = (w @ gb.reshape(n, n * rr)).reshape(n, rr)  # row i: B_lin^T (s_i B_i)
    lin_a = (aw @ ga.reshape(n, n * rr)).reshape(n, rr)  # row i: A_lin A_i^T
    inners = (flat_b * flat_a).sum(-1).reshape(n, n)  # <s_i B_i A_i, s_k B_k A_k>_F
    terms = (
        float(sum_b @ sum_a),
        float(w @ (lin_b * lin_a).sum(-1)),
        float(w @ inners @ w),
        float((w * w) @ inners.diagonal()),
    )
    totals.overall = [t + v for t, v in zip(totals.overall, terms, strict=True)]
    if totals.pairs:
        sel = torch.tensor(totals.pairs, device=gb.device)  # (P, 2)
        pb = gb[sel[:, :, None], sel[:, None, :]].reshape(-1, 4, rr)  # (P, [i k], r r)
        pa = ga[sel[:, :, None], sel[:, None, :]].reshape(-1, 4, rr)  # (P, [j l], r r)
        table = (pb @ pa.transpose(1, 2)).reshape(-1, 2, 2, 2, 2)  # T[p, i, k, j, l]
        totals.pair_tables += table.to(totals.pair_tables.device)
    return inners.cpu()


def new_totals(weights: Sequence[float]) -> CrossTermTotals:
    n = len(weights)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    return CrossTermTotals(
        n=n,
        weights=[float(w) for w in weights],
        pairs=pairs,
        pair_tables=torch.zeros(len(pairs), 2, 2, 2, 2, dtype=torch.float64),
    )


def pair_error(totals: CrossTermTotals, index: int) -> float | None:
    """Relative distance of linear from the exact sum for pair number `index` (alone)."""
    p, q = totals.pairs[index]
    t = totals.pair_tables[index]
    w = torch.tensor([totals.weights[p], totals.weights[q]], dtype=torch.float64)
    c = torch.outer(w, w.abs()) - torch.diag(w)  # L - E = sum_ij c_ij (s_i B_i) A_j
    diff = float(torch.einsum("ij,kl,ikjl->", c, c, t))
    exact = float(torch.einsum("i,k,ikik->", w, w, t))
    own = float(torch.einsum("i,iiii->", w * w, t))
    return relative_error(diff, exact, own)


def overall_error(totals: CrossTermTotals) -> float | None:
    lin, cross, exact, own = totals.overall
    return relative_error(lin - 2 * cross + exact, exact, own)


def relative_error(diff_sq: float, exact_sq: float, own_sq: float) -> float | None:
    """sqrt(diff / exact); 0.0 when the difference is rounding-small; None when the exact sum is
    (rounding-)zero but linear's is not, where a relative error means nothing."""
    if diff_sq <= _ROUNDING * own_sq:
        return 0.0
    if exact_sq <= _ROUNDING * own_sq:
        return None  # e.g. B2 = 2 B1, A2 = -A1 / 2: the exact sum is zero
    return math.sqrt(max(diff_sq, 0.0) / exact_sq)
