"""DELLA (Deep et al. 2024; mergekit's `della`) on LoRA and (IA)3 deltas, one input at a time.

Per input, MagPrune: the entries of D_i are ranked by |D_i| (0 = smallest; equal magnitudes by flat
position) and entry j is kept with probability p_j = density - epsilon/2 + epsilon * rank_j / (n - 1)
(n = numel; p = density when n = 1), so the largest entries are kept most often and the mean keep
rate is density. The draw is `torch.rand(shape, generator=torch.Generator().manual_seed(dare_seed(seed,
module, index))) < p`, on CPU as DARE's, so the same seed gives the same masks whatever the spec's
name or the device. Kept entries are rescaled by 1/p_j, multiplied by the weight (T_i), and merged by
TIES's election and disjoint mean (pruning.ties_merge), in two passes that redraw the same masks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

import torch

from registry.compose.pruning import ties_merge


def keep_probabilities(delta: torch.Tensor, density: float, epsilon: float) -> torch.Tensor:
    """p_j spread linearly over [density - epsilon/2, density + epsilon/2] by the rank of |delta_j|."""
    n = delta.numel()
    if n == 1:
        return torch.full_like(delta, density)
    # |x| >= 0 orders as its int32 bit pattern (NaN was refused): torch sorts int32 by radix, ~5x
    # faster than a float sort of the same length
    order = torch.sort(delta.abs().flatten().view(torch.int32), stable=True).indices
    # float32 ranks: above 2^24 entries a rank rounds by a few units, moving p by < 1e-7
    ranks = torch.empty(n, dtype=torch.float32, device=delta.device)
    ranks[order] = torch.arange(n, dtype=torch.float32, device=delta.device)
    return ranks.mul_(epsilon / (n - 1)).add_(density - epsilon / 2).view_as(delta)


def magprune(delta: torch.Tensor, density: float, epsilon: float, seed: int) -> torch.Tensor:
    """The kept entries of delta, each divided by its keep probability; the rest 0."""
    p = keep_probabilities(delta, density, epsilon)
    draw = torch.rand(delta.shape, generator=torch.Generator().manual_seed(seed)).to(delta.device)
    return torch.where(draw < p, delta / p, 0.0)


def della(
    deltas: Callable[[], Iterable[torch.Tensor]],
    weights: Sequence[float],
    density: float,
    epsilon: float,
    majority_sign: str,
    seeds: Sequence[int],
) -> torch.Tensor:
    """The merged delta of one module; `deltas()` yields the inputs' dense deltas (a fresh pass per call)."""

    def each() -> Iterator[torch.Tensor]:
        for delta, weight, seed in zip(deltas(), weights, seeds, strict=True):
            yield magprune(delta, density, epsilon, seed).mul_(weight)

    return ties_merge(each, majority_sign)
