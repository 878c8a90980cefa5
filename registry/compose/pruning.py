"""Pruning merges (TIES, DARE, magnitude) on dense per-input deltas, shared by every PEM type.

Definitions (tests reimplement these independently):
- magnitude mask: keep the int(density * numel) largest |x| entries (PEFT's count rule).
- DARE mask: `torch.rand(shape, generator=torch.Generator().manual_seed(dare_seed(seed, module,
  index))) < density`, drawn on CPU so results do not depend on the device; kept entries / density.
- magnitude_prune: sum_i w_i mag(D_i);  dare_linear: sum_i w_i dare(D_i).
- ties / dare_ties: T_i = w_i * trimmed(D_i) (trim = mag for ties, dare for dare_ties). The sign is
  elected on the weighted T_i, so negative weights are honoured: 'total' -> sign(sum_i T_i),
  'frequency' -> sign(sum_i sign(T_i)), ties broken to +. Result = sum of the T_i whose sign equals
  the elected one, divided by how many there are (at least 1): TIES's disjoint mean.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import torch


def dare_seed(seed: int, module: str, index: int) -> int:
    """Per (module, input) seed: reproducible and independent of module order."""
    return zlib.crc32(f"{seed}/{module}/{index}".encode())


def magnitude_mask(t: torch.Tensor, density: float) -> torch.Tensor:
    k = int(density * t.numel())
    mask = torch.zeros(t.numel(), dtype=torch.bool, device=t.device)
    if k > 0:
        mask[torch.topk(t.abs().flatten(), k, sorted=False).indices] = True
    return mask.view_as(t)


def dare_mask(shape: torch.Size, density: float, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=gen) < density


def prune_merge(
    deltas: Sequence[torch.Tensor],
    weights: Sequence[float],
    method: str,
    density: float,
    majority_sign: str,
    seeds: Sequence[int],
) -> torch.Tensor:
    trimmed = []
    for delta, weight, seed in zip(deltas, weights, seeds, strict=True):
        if method in ("ties", "magnitude_prune"):
            kept = delta * magnitude_mask(delta, density)
        else:
            kept = delta * dare_mask(delta.shape, density, seed).to(delta.device) / density
        trimmed.append(weight * kept)
    stacked = torch.stack(trimmed)
    if method in ("magnitude_prune", "dare_linear"):
        return stacked.sum(dim=0)
    signs = stacked.sign()
    votes = stacked.sum(dim=0) if majority_sign == "total" else signs.sum(dim=0)
    elected = torch.where(votes >= 0, 1.0, -1.0)
    agree = signs == elected
    return (stacked * agree).sum(dim=0) / agree.sum(dim=0).clamp(min=1)
