"""Dense methods form one input's dense delta at a time (TIES in two passes), whatever the inputs."""

from __future__ import annotations

import weakref

import pytest
import torch

from registry.compose.pruning import prune_merge

METHODS = [
    ("ties", "total"),
    ("ties", "frequency"),
    ("dare_ties", "total"),
    ("dare_linear", "total"),
    ("magnitude_prune", "total"),
]


def stacked_reference(method, deltas, weights, density, sign, seeds):
    """The all-at-once definition (docs/methods.md), float64, masks drawn as the engine draws them."""
    trimmed = []
    for d, w, seed in zip(deltas, weights, seeds, strict=True):
        if method in ("ties", "magnitude_prune"):
            k = int(density * d.numel())
            threshold = d.abs().flatten().sort(descending=True).values[k - 1]
            kept = d * (d.abs() >= threshold)
        else:
            gen = torch.Generator().manual_seed(seed)
            kept = d * (torch.rand(d.shape, generator=gen) < density) / density
        trimmed.append(w * kept.double())
    t = torch.stack(trimmed)
    if method in ("magnitude_prune", "dare_linear"):
        return t.sum(0)
    votes = t.sum(0) if sign == "total" else t.sign().sum(0)
    elected = torch.where(votes >= 0, 1.0, -1.0).double()
    agree = t.sign() == elected
    return (t * agree).sum(0) / agree.sum(0).clamp(min=1)


@pytest.mark.parametrize(("method", "sign"), METHODS)
def test_one_dense_delta_alive_at_a_time_and_same_result(method, sign):
    gen = torch.Generator().manual_seed(0)
    n = 7
    deltas = [torch.randn(40, 30, generator=gen) for _ in range(n)]
    weights = [0.5, -1.0, 0.8, 0.3, -0.2, 1.1, 0.6]
    seeds = list(range(11, 11 + n))
    alive = {"now": 0, "peak": 0, "made": 0}

    def release() -> None:
        alive["now"] -= 1

    def fresh():
        for d in deltas:
            copy = d.clone()  # what the composer does: a new dense delta per input per pass
            alive["now"] += 1
            alive["made"] += 1
            alive["peak"] = max(alive["peak"], alive["now"])
            weakref.finalize(copy, release)
            yield copy

    got = prune_merge(fresh, weights, method, 0.4, sign, seeds)
    assert alive["peak"] <= 2  # the one being trimmed and, at most, the next being formed
    passes = 1 if method in ("magnitude_prune", "dare_linear") else 2
    assert alive["made"] == passes * n
    expected = stacked_reference(method, deltas, weights, 0.4, sign, seeds)
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-6)
