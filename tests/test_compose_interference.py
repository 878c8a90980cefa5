"""Interference report vs cosines of the flattened dense deltas computed here."""

from __future__ import annotations

import math

import pytest
import torch

from registry.compose import interference_report
from registry.pem import read_adapter
from tests.compose_helpers import ia3_vectors, library, lora_deltas


def dense_rms_cosine(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> tuple[float, float]:
    cos = [
        float(torch.nn.functional.cosine_similarity(a[p].flatten(), b[p].flatten(), dim=0))
        for p in sorted(a.keys() & b.keys())
    ]
    return math.sqrt(sum(c * c for c in cos) / len(cos)), sum(cos) / len(cos)


def test_lora_pairwise_rms_cosine_matches_dense():
    lib = library()
    names = ["l1", "l_r8", "l_qv"]
    report = interference_report([read_adapter(lib[n]) for n in names])
    assert [(p.i, p.j) for p in report.pairs] == [(0, 1), (0, 2), (1, 2)]
    for pair in report.pairs:
        rms, mean = dense_rms_cosine(lora_deltas(lib[names[pair.i]]), lora_deltas(lib[names[pair.j]]))
        assert pair.rms_cosine == pytest.approx(rms, abs=1e-5)
        assert pair.mean_cosine == pytest.approx(mean, abs=1e-5)
    assert report.pairs[1].modules == 4  # l_qv has q and v in 2 layers


def test_identical_inputs_warn_and_negative_weight_flips_sign():
    x = read_adapter(library()["l1"])
    report = interference_report([x, x], [1.0, -1.0], threshold=0.5, names=["a", "b"])
    pair = report.pairs[0]
    assert pair.rms_cosine == pytest.approx(1.0, abs=1e-5)
    assert pair.mean_cosine == pytest.approx(-1.0, abs=1e-5)
    assert report.warnings == ["a and b interfere: RMS cosine 1.000 > 0.5"]
    assert report.to_dict()["pairs"][0]["i"] == 0


def test_independent_random_adapters_are_below_threshold():
    lib = library()
    report = interference_report([read_adapter(lib["l1"]), read_adapter(lib["l2"])], threshold=0.9)
    assert report.warnings == []


def test_ia3_cosine_of_l_minus_one():
    lib = library()
    report = interference_report([read_adapter(lib["i1"]), read_adapter(lib["i2"])])
    a = {p: v - 1 for p, v in ia3_vectors(lib["i1"]).items()}
    b = {p: v - 1 for p, v in ia3_vectors(lib["i2"]).items()}
    assert report.pairs[0].rms_cosine == pytest.approx(dense_rms_cosine(a, b)[0], abs=1e-5)
