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
Computed in passes over the inputs, one dense delta at a time (`prune_merge`).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence

import torch


def dare_seed(seed: int, module: str, index: int) -> int:
    """Per (module, input) seed: reproducible and independent of module order."""
    return zlib.crc32(f"{seed}/{module}/{index}".encode())


def magnitude_mask(t: torch.Tensor, density: float) -> torch.Tensor:
    """The int(density * numel) largest |t| entries (entries equal to the smallest kept magnitude are
    taken in flat order). By a threshold, not `topk`: topk's k values and int64 indices are 1.5x the
    module (69 MB on an 11.5M-entry module, per input), and in the heap they raised the dense methods'
    peak RSS with the number of inputs. |x| >= 0 orders as its int32 bit pattern (NaN is refused
    before), and `kthvalue` selects on those bits."""
    n = t.numel()
    k = int(density * n)
    if k <= 0:
        return torch.zeros_like(t, dtype=torch.bool)
    bits = t.abs().flatten().view(torch.int32)
    threshold = torch.kthvalue(bits, n - k + 1).values
    mask = bits > threshold
    short = k - int(mask.sum())
    if short > 0:  # equal magnitudes at the threshold: the first ones in flat order
        mask[(bits == threshold).nonzero().flatten()[:short]] = True
    return mask.view_as(t)


def dare_mask(shape: torch.Size, density: float, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=gen) < density


# method -> (trim, TIES sign election): every pruning method by name, no default.
PRUNING: dict[str, tuple[str, bool]] = {
    "ties": ("magnitude", True),
    "magnitude_prune": ("magnitude", False),
    "dare_linear": ("dare", False),
    "dare_ties": ("dare", True),
}


def _rule(method: str) -> tuple[str, bool]:
    try:
        return PRUNING[method]
    except KeyError:
        raise ValueError(f"{method!r} is not a pruning method ({', '.join(PRUNING)})") from None


def trimmed(delta: torch.Tensor, weight: float, method: str, density: float, seed: int) -> torch.Tensor:
    """T_i = w_i * trim(D_i): the magnitude mask (ties, magnitude_prune) or DARE's (dare_*)."""
    if _rule(method)[0] == "magnitude":
        kept = delta * magnitude_mask(delta, density)
    else:
        kept = delta * dare_mask(delta.shape, density, seed).to(delta.device) / density
    return kept.mul_(weight)


def prune_merge(
    deltas: Callable[[], Iterable[torch.Tensor]],
    weights: Sequence[float],
    method: str,
    density: float,
    majority_sign: str,
    seeds: Sequence[int],
) -> torch.Tensor:
    """Merge one module. `deltas()` yields the inputs' dense deltas one at a time (a fresh pass each
    call), so memory is a few module-sized buffers whatever the number of inputs: the linear ones
    accumulate in one pass; the TIES ones take two (the per-entry sign votes, then the disjoint mean
    of the entries that agree with the elected sign), recomputing each T_i (both masks are
    deterministic)."""

    def each() -> Iterator[torch.Tensor]:
        for delta, weight, seed in zip(deltas(), weights, seeds, strict=True):
            yield trimmed(delta, weight, method, density, seed)

    if not _rule(method)[1]:
        return _sum(each())
    return ties_merge(each, majority_sign)


def ties_merge(each: Callable[[], Iterable[torch.Tensor]], majority_sign: str) -> torch.Tensor:
    """TIES's sign election and disjoint mean over the trimmed, weighted T_i that `each()` yields (a
    fresh, identical pass per call): one pass for the votes, one for the mean of the agreeing entries."""
    votes = _sum(each()) if majority_sign == "total" else _sum(t.sign_() for t in each())
    elected = torch.where(votes >= 0, 1.0, -1.0)
    del votes
    total: torch.Tensor | None = None
    count: torch.Tensor | None = None
    for t in each():
        agree = t.sign() == elected
        t.mul_(agree)
        if total is None or count is None:
            total, count = t, agree.to(torch.float32)
        else:
            total.add_(t)
            count.add_(agree)
    assert total is not None and count is not None, "a module has at least one input"
    return total.div_(count.clamp_(min=1))


def _sum(terms: Iterable[torch.Tensor]) -> torch.Tensor:
    total: torch.Tensor | None = None
    for t in terms:
        total = t if total is None else total.add_(t)
    assert total is not None, "a module has at least one input"
    return total
