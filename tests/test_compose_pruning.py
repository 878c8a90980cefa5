"""TIES / DARE / magnitude merges, reimplemented here on dense deltas (float64) from their definitions."""

from __future__ import annotations

import zlib

import pytest
import torch

from registry.compose import compose
from registry.compose.pruning import magnitude_mask
from registry.pem import read_adapter
from tests.compose_helpers import assert_close, ia3_vectors, library, lora_deltas


def keep_top(t: torch.Tensor, density: float) -> torch.Tensor:
    k = int(density * t.numel())
    if k == 0:
        return torch.zeros_like(t)
    threshold = t.abs().flatten().sort(descending=True).values[k - 1]
    return t * (t.abs() >= threshold)


def dare(t: torch.Tensor, density: float, seed: int, module: str, index: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(zlib.crc32(f"{seed}/{module}/{index}".encode()))
    return t * (torch.rand(t.shape, generator=gen) < density) / density


def reference(method, deltas, weights, density, sign, seed, module):
    trimmed = []
    for i, (d, w) in enumerate(zip(deltas, weights, strict=True)):
        kept = (
            keep_top(d, density)
            if method in ("ties", "magnitude_prune")
            else dare(d, density, seed, module, i)
        )
        trimmed.append(w * kept)
    if method in ("magnitude_prune", "dare_linear"):
        return sum(trimmed)
    t = torch.stack(trimmed)
    votes = t.sum(0) if sign == "total" else t.sign().sum(0)
    elected = torch.where(votes >= 0, 1.0, -1.0).double()
    agree = t.sign() == elected
    return (t * agree).sum(0) / agree.sum(0).clamp(min=1)


CASES = [
    ("ties", "total"),
    ("ties", "frequency"),
    ("dare_ties", "total"),
    ("dare_ties", "frequency"),
    ("dare_linear", "total"),
    ("magnitude_prune", "total"),
]


@pytest.mark.parametrize(("method", "sign"), CASES)
def test_lora_pruning_on_dense_deltas_at_full_rank(method, sign):
    lib = library()
    names, weights = ["l1", "l2", "l3"], [0.6, -0.9, 0.4]
    result = compose(
        [read_adapter(lib[n]) for n in names],
        weights,
        method,
        rank=32,
        density=0.4,
        majority_sign=sign,
        seed=7,
    )
    deltas = [lora_deltas(lib[n]) for n in names]
    for path, m in result.adapter.modules.items():
        expected = reference(method, [d[path] for d in deltas], weights, 0.4, sign, 7, path)
        assert_close(m.scale * (m.B.double() @ m.A.double()), expected, 1e-4)


def test_pruning_recompresses_to_the_truncated_svd():
    lib = library()
    weights = [1.0, 0.5]
    result = compose([read_adapter(lib["l1"]), read_adapter(lib["l2"])], weights, "ties", rank=3, density=0.5)
    path = "model.layers.1.self_attn.v_proj"
    merged = reference(
        "ties", [lora_deltas(lib[n])[path] for n in ("l1", "l2")], weights, 0.5, "total", 0, path
    )
    u, s, vh = torch.linalg.svd(merged)
    m = result.adapter.modules[path]
    assert_close(m.B.double() @ m.A.double(), (u[:, :3] * s[:3]) @ vh[:3], 1e-4)
    assert result.modules[path]["retained_energy"] == pytest.approx(
        float(s[:3].square().sum() / s.square().sum())
    )


def test_dare_is_reproducible_by_seed():
    x, y = (read_adapter(library()[n]) for n in ("l1", "l2"))
    run = lambda seed: compose([x, y], [1.0, 1.0], "dare_linear", density=0.3, seed=seed).adapter  # noqa: E731
    a, b, c = run(1), run(1), run(2)
    path = "model.layers.0.self_attn.q_proj"
    assert torch.equal(a.modules[path].B @ a.modules[path].A, b.modules[path].B @ b.modules[path].A)
    assert not torch.equal(a.modules[path].B @ a.modules[path].A, c.modules[path].B @ c.modules[path].A)


@pytest.mark.parametrize(("method", "sign"), CASES)
def test_ia3_pruning_acts_on_l_minus_one(method, sign):
    lib = library()
    names, weights = ["i1", "i2", "i_sub"], [0.5, -1.0, 0.8]
    result = compose(
        [read_adapter(lib[n]) for n in names], weights, method, density=0.5, majority_sign=sign, seed=3
    )
    vectors = [ia3_vectors(lib[n]) for n in names]
    for path, m in result.adapter.modules.items():
        present = [
            (i, v[path] - 1, w) for i, (v, w) in enumerate(zip(vectors, weights, strict=True)) if path in v
        ]
        deltas = [d for _, d, _ in present]
        ws = [w for _, _, w in present]
        if method.startswith("dare"):  # the mask seed follows the input's position in the list
            trimmed = [w * dare(d, 0.5, 3, path, i) for i, d, w in present]
            expected = reference_from_trimmed(method, trimmed, sign)
        else:
            expected = reference(method, deltas, ws, 0.5, sign, 3, path)
        assert_close(m.l, 1 + expected, 1e-6)


def reference_from_trimmed(method, trimmed, sign):
    if method == "dare_linear":
        return sum(trimmed)
    t = torch.stack(trimmed)
    votes = t.sum(0) if sign == "total" else t.sign().sum(0)
    elected = torch.where(votes >= 0, 1.0, -1.0).double()
    agree = t.sign() == elected
    return (t * agree).sum(0) / agree.sum(0).clamp(min=1)


def test_magnitude_mask_keeps_exactly_k_entries_when_magnitudes_tie():
    """int(density * numel) entries, even where many magnitudes equal the smallest kept one (taken in
    flat order), and every kept magnitude >= every dropped one."""
    t = torch.tensor([[0.5, -0.5, 0.5, 0.1], [-0.5, 2.0, 0.0, 0.5]])
    mask = magnitude_mask(t, 0.5)  # k = 4: 2.0 and the first three of the five 0.5s
    assert int(mask.sum()) == 4
    assert mask.flatten().tolist() == [True, True, True, False, False, True, False, False]
    assert magnitude_mask(t, 0.0).sum() == 0 and magnitude_mask(t, 1.0).all()
    big = torch.randn(300, 200)
    kept = magnitude_mask(big, 0.3)
    assert int(kept.sum()) == int(0.3 * big.numel())
    assert big.abs()[kept].min() >= big.abs()[~kept].max()
