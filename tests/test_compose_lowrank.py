"""The dense methods' recompression (lowrank.dense_truncated) against a float64 SVD written here."""

from __future__ import annotations

import pytest
import torch

from registry.compose.lowrank import dense_truncated


def _ties_like(d: int, k: int, seed: int) -> torch.Tensor:
    """Four rank-8 deltas, each trimmed to half its entries, summed: full rank, decaying spectrum."""
    gen = torch.Generator().manual_seed(seed)
    total = torch.zeros(d, k)
    for _ in range(4):
        delta = torch.randn(d, 8, generator=gen) @ torch.randn(8, k, generator=gen) * 0.01
        cut = delta.abs().flatten().kthvalue(delta.numel() // 2).values
        total += torch.where(delta.abs() > cut, delta, 0.0)
    return total


@pytest.mark.parametrize(
    ("d", "k", "rank"), [(300, 700, 8), (700, 300, 8), (400, 400, 16), (90, 60, 8), (60, 90, 32)]
)
def test_dense_truncated_is_the_best_rank_k_approximation(d: int, k: int, rank: int) -> None:
    matrix = _ties_like(d, k, seed=d + k)
    b, a, retained = dense_truncated(matrix, rank)
    assert b.shape == (d, rank) and a.shape == (rank, k)
    u, s, vh = torch.linalg.svd(matrix.double(), full_matrices=False)  # the reference, float64
    best = (u[:, :rank] * s[:rank]) @ vh[:rank]
    got = (b @ a).double()
    # the same approximation (to float32 rounding), hence the same, optimal residual
    assert torch.linalg.norm(got - best) <= 1e-4 * torch.linalg.norm(best)
    residual, optimal = torch.linalg.norm(matrix.double() - got), torch.linalg.norm(matrix.double() - best)
    assert residual <= optimal * (1 + 1e-6)
    assert retained == pytest.approx(float(s[:rank].square().sum() / s.square().sum()), rel=1e-5)


def test_dense_truncated_pads_a_matrix_of_lower_rank_and_keeps_a_zero_zero() -> None:
    gen = torch.Generator().manual_seed(1)
    low = torch.randn(200, 3, generator=gen) @ torch.randn(3, 500, generator=gen)
    b, a, retained = dense_truncated(low, 16)
    assert torch.linalg.norm(b @ a - low) <= 1e-4 * torch.linalg.norm(low)
    assert retained == pytest.approx(1.0, abs=1e-6)
    b, a, retained = dense_truncated(torch.zeros(200, 500), 16)
    assert not b.any() and not a.any() and retained == 1.0
