"""core_merge, reimplemented here from its definition on dense float64 deltas (no code shared with
registry.compose.core_merge): cores by threshold, owners by a loop over inputs, overlap by counting."""

from __future__ import annotations

import math

import pytest
import torch

from registry.compose import compose
from registry.compose.core_merge import ActivationNorms
from registry.errors import InvalidInput
from registry.pem import read_adapter
from tests.compose_helpers import assert_close, ia3_vectors, library, lora_deltas

FULL_RANK = 64  # >= min(d, k) of every tiny module: the SVD recompression is then exact


def core_of(score: torch.Tensor, density: float) -> torch.Tensor:
    k = int(density * score.numel())
    if k == 0:
        return torch.zeros_like(score, dtype=torch.bool)
    threshold = score.flatten().sort(descending=True).values[k - 1]
    return (score >= threshold) & (score > 0)


def reference(weighted: list[torch.Tensor], scores: list[torch.Tensor], density: float):
    """(merged, cores): owned entries keep the largest-|T| core value, the rest is the plain sum."""
    cores = [core_of(s, density) for s in scores]
    merged = sum(weighted)
    best = torch.zeros_like(merged)
    for t, core in zip(weighted, cores, strict=True):
        wins = core & (t.abs() > best)  # strict: on a tie the earlier input keeps the entry
        merged = torch.where(wins, t, merged)
        best = torch.where(wins, t.abs(), best)
    return merged, cores


def overlap(a: torch.Tensor, b: torch.Tensor) -> float:
    small = min(int(a.sum()), int(b.sum()))
    return int((a & b).sum()) / small if small else 0.0


def lora_delta(adapter) -> dict[str, torch.Tensor]:
    return {p: m.scale * (m.B.double() @ m.A.double()) for p, m in adapter.modules.items()}


def norms_for(deltas: dict[str, torch.Tensor], seed: int) -> dict[str, ActivationNorms]:
    gen = torch.Generator().manual_seed(seed)
    return {
        p: ActivationNorms(
            input=torch.rand(d.shape[1], generator=gen, dtype=torch.float64) + 0.1,
            output=torch.rand(d.shape[0], generator=gen, dtype=torch.float64) + 0.1,
        )
        for p, d in deltas.items()
    }


@pytest.mark.parametrize("criterion", ["magnitude", "importance"])
def test_lora_core_merge_matches_dense_reference(criterion):
    lib = library()
    names, weights, density = ["l1", "l2", "l_qv"], [0.7, -0.5, 1.2], 0.3
    deltas = [lora_deltas(lib[n]) for n in names]
    norms = norms_for(deltas[0], seed=11) if criterion == "importance" else None
    result = compose(
        [read_adapter(lib[n]) for n in names],
        weights,
        "core_merge",
        rank=FULL_RANK,
        density=density,
        core_criterion=criterion,
        activation_norms=norms,
    )
    got = lora_delta(result.adapter)
    assert set(got) == set(deltas[0]) | set(deltas[2])
    per_pair: dict[tuple[int, int], list[float]] = {}
    for path, actual in got.items():
        present = [i for i in range(len(names)) if path in deltas[i]]
        weighted = [weights[i] * deltas[i][path] for i in present]
        scores = [t.abs() * (norms[path].input[None, :] if norms else 1.0) for t in weighted]
        expected, cores = reference(weighted, scores, density)
        assert_close(actual, expected, tol=1e-5)
        reported = {(p["i"], p["j"]): p["overlap"] for p in result.modules[path]["core"]["core_overlap"]}
        for a in range(len(present)):
            for b in range(a + 1, len(present)):
                key = (present[a], present[b])
                assert reported[key] == pytest.approx(overlap(cores[a], cores[b]))
                per_pair.setdefault(key, []).append(overlap(cores[a], cores[b]))
    summary = {(p["i"], p["j"]): p for p in result.summary["core_overlap"]}
    assert set(summary) == set(per_pair)
    for key, values in per_pair.items():
        rms = math.sqrt(sum(v * v for v in values) / len(values))
        assert summary[key]["rms_overlap"] == pytest.approx(rms)
        assert summary[key]["modules"] == len(values)
    assert result.params["core_criterion"] == criterion


def test_lora_core_merge_truncates_like_svd_and_is_reproducible():
    lib = library()
    adapters = [read_adapter(lib[n]) for n in ("l1", "l3")]
    weights, density, rank = [1.0, 0.8], 0.2, 4
    result = compose(adapters, weights, "core_merge", rank=rank, density=density)
    again = compose(adapters, weights, "core_merge", rank=rank, density=density)
    d1, d3 = lora_deltas(lib["l1"]), lora_deltas(lib["l3"])
    for path, actual in lora_delta(result.adapter).items():
        weighted = [weights[0] * d1[path], weights[1] * d3[path]]
        expected, _ = reference(weighted, [t.abs() for t in weighted], density)
        u, s, vh = torch.linalg.svd(expected)
        best = (u[:, :rank] * s[:rank]) @ vh[:rank]
        assert_close(actual, best, tol=1e-4)
        energy = float(s[:rank].square().sum() / s.square().sum())
        assert result.modules[path]["retained_energy"] == pytest.approx(energy, rel=1e-5)
        assert torch.equal(result.adapter.modules[path].A, again.adapter.modules[path].A)


@pytest.mark.parametrize("criterion", ["magnitude", "importance"])
def test_ia3_core_merge_on_l_minus_one(criterion):
    lib = library()
    names, weights, density = ["i1", "i2", "i_sub"], [0.6, 0.9, -0.4], 0.4
    vectors = [ia3_vectors(lib[n]) for n in names]
    adapters = [read_adapter(lib[n]) for n in names]
    norms = None
    if criterion == "importance":
        gen = torch.Generator().manual_seed(5)
        norms = {
            p: ActivationNorms(
                input=torch.rand(v.numel(), generator=gen) + 0.1,
                output=torch.rand(v.numel(), generator=gen) + 0.1,
            )
            for p, v in vectors[0].items()
        }
    result = compose(
        adapters, weights, "core_merge", density=density, core_criterion=criterion, activation_norms=norms
    )
    for path, module in result.adapter.modules.items():
        present = [i for i in range(len(names)) if path in vectors[i]]
        weighted = [weights[i] * (vectors[i][path] - 1.0) for i in present]
        factor = 1.0
        if norms is not None:
            ff = adapters[present[0]].modules[path].is_feedforward
            factor = (norms[path].input if ff else norms[path].output).double().reshape(weighted[0].shape)
        expected, _ = reference(weighted, [t.abs() * factor for t in weighted], density)
        assert_close(module.l, 1.0 + expected, tol=1e-6)


def test_zero_weight_input_owns_no_core():
    lib = library()
    adapters = [read_adapter(lib[n]) for n in ("i1", "i2")]
    result = compose(adapters, [1.0, 0.0], "core_merge", density=0.5)
    for report in result.modules.values():
        assert report["core"]["core_sizes"]["1"] == 0
        assert report["core"]["core_overlap"][0]["overlap"] == 0.0


def test_core_merge_refuses_bad_parameters():
    lib = library()
    adapters = [read_adapter(lib[n]) for n in ("l1", "l2")]
    with pytest.raises(InvalidInput) as exc:
        compose(adapters, [1, 1], "core_merge", density=0.5, core_criterion="importance")
    assert exc.value.field == "calibration"
    with pytest.raises(InvalidInput) as exc:
        compose(adapters, [1, 1], "core_merge", density=0.5, core_criterion="gradient")
    assert exc.value.field == "core_criterion"
    with pytest.raises(InvalidInput) as exc:
        compose(adapters, [1, 1], "core_merge")
    assert exc.value.field == "density"
    with pytest.raises(InvalidInput) as exc:
        compose(adapters, [1, 1], "core_merge", density=0.5, core_criterion="importance", activation_norms={})
    assert exc.value.field == "calibration" and "model.layers.0.self_attn" in str(exc.value)
