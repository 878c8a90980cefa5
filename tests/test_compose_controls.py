"""#21.4/5: the controls (norm ratio and cosine of the result vs the exact weighted sum), the `scale`
applied to the composed delta, and the subspace and core overlaps, each against a dense float64
formula written here (the code under test computes them from factors)."""

from __future__ import annotations

import math
import statistics

import pytest
import torch

from registry.compose import compose, interference_report
from registry.pem import read_adapter
from tests.compose_helpers import ia3_vectors, library, lora_deltas

NAMES = ["l1", "l2", "l3"]
WEIGHTS = [0.7, -0.4, 0.5]


def dense_result(adapter) -> dict[str, torch.Tensor]:
    return {p: m.scale * (m.B.double() @ m.A.double()) for p, m in adapter.modules.items()}


def exact_sum(folders, weights) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for folder, w in zip(folders, weights, strict=True):
        for p, d in lora_deltas(folder).items():
            out[p] = out.get(p, 0) + w * d
    return out


@pytest.mark.parametrize("method,extra", [("ties", {"density": 0.3}), ("delta_svd", {"rank": 4})])
def test_norm_ratio_and_cosine_per_module_match_dense(method, extra):
    lib = library()
    folders = [lib[n] for n in NAMES]
    result = compose([read_adapter(f) for f in folders], WEIGHTS, method, **extra)
    got = dense_result(result.adapter)
    exact = exact_sum(folders, WEIGHTS)
    ratios, cosines = [], []
    for path, e in exact.items():
        r = got[path]
        ratio = float(r.norm() / e.norm())
        cosine = float((r * e).sum() / (r.norm() * e.norm()))
        control = result.modules[path]["control"]
        assert control["norm_ratio"] == pytest.approx(ratio, rel=1e-4)
        assert control["cosine"] == pytest.approx(cosine, abs=1e-4)
        ratios.append(ratio)
        cosines.append(cosine)
    summary = result.summary["control"]
    assert summary["modules"] == len(exact)
    assert summary["median_norm_ratio"] == pytest.approx(statistics.median(ratios), rel=1e-4)
    assert summary["rms_norm_ratio"] == pytest.approx(
        math.sqrt(sum(x * x for x in ratios) / len(ratios)), rel=1e-4
    )
    total = math.sqrt(
        sum(float(got[p].square().sum()) for p in exact)
        / sum(float(e.square().sum()) for e in exact.values())
    )
    assert summary["total_norm_ratio"] == pytest.approx(total, rel=1e-4)
    assert summary["min_cosine"] == pytest.approx(min(cosines), abs=1e-4)


def test_delta_cat_control_is_one_and_scale_multiplies_the_delta():
    lib = library()
    adapters = [read_adapter(lib[n]) for n in NAMES]
    exact = exact_sum([lib[n] for n in NAMES], WEIGHTS)
    plain = compose(adapters, WEIGHTS, "delta_cat")
    assert plain.summary["control"]["total_norm_ratio"] == pytest.approx(1.0, rel=1e-4)
    assert plain.summary["control"]["min_cosine"] == pytest.approx(1.0, abs=1e-4)
    assert "scale" not in plain.params
    scaled = compose(adapters, WEIGHTS, "delta_cat", scale=0.7)
    assert scaled.params["scale"] == 0.7
    got = dense_result(scaled.adapter)
    for path, e in exact.items():
        torch.testing.assert_close(got[path], 0.7 * e, rtol=1e-4, atol=1e-6)
    assert scaled.summary["control"]["median_norm_ratio"] == pytest.approx(0.7, rel=1e-4)
    assert scaled.summary["control"]["median_cosine"] == pytest.approx(1.0, abs=1e-4)


def test_ia3_scale_is_around_the_identity():
    lib = library()
    adapters = [read_adapter(lib[n]) for n in ("i1", "i2")]
    result = compose(adapters, [0.6, 0.3], "linear", scale=0.5)
    a, b = ia3_vectors(lib["i1"]), ia3_vectors(lib["i2"])
    for path, module in result.adapter.modules.items():
        expected = 1 + 0.5 * (0.6 * (a[path] - 1) + 0.3 * (b[path] - 1))
        torch.testing.assert_close(module.l.double(), expected, rtol=1e-5, atol=1e-6)
        assert result.modules[path]["control"]["norm_ratio"] == pytest.approx(0.5, rel=1e-4)


def dense_subspace_overlap(d_i: torch.Tensor, d_j: torch.Tensor) -> float:
    """Principal angles from the dense float64 deltas: orthonormal column bases by SVD (rank by the
    1e-9 relative threshold), cosines = singular values of U_i^T U_j, mean of squares over min rank."""

    def basis(d: torch.Tensor) -> torch.Tensor:
        u, s, _ = torch.linalg.svd(d, full_matrices=False)
        return u[:, s > 1e-9 * s[0]]

    u_i, u_j = basis(d_i), basis(d_j)
    cosines = torch.linalg.svdvals(u_i.T @ u_j)
    return float(cosines.square().sum()) / min(u_i.shape[1], u_j.shape[1])


def test_subspace_overlap_matches_principal_angles_of_dense_deltas():
    lib = library()
    names = ["l1", "l_r8", "l_qv"]
    report = interference_report([read_adapter(lib[n]) for n in names], [1.0, -0.5, 2.0])
    deltas = [lora_deltas(lib[n]) for n in names]
    for pair in report.pairs:
        a, b = deltas[pair.i], deltas[pair.j]
        values = [dense_subspace_overlap(a[p], b[p]) for p in sorted(a.keys() & b.keys())]
        rms = math.sqrt(sum(v * v for v in values) / len(values))
        assert pair.subspace_overlap == pytest.approx(rms, abs=1e-6)
        assert pair.mean_subspace_overlap == pytest.approx(sum(values) / len(values), abs=1e-6)
        assert pair.core_overlap is None  # not asked for


def test_subspace_overlap_of_a_contained_space_is_one():
    x = read_adapter(library()["l1"])
    report = interference_report([x, x], [1.0, -3.0])
    assert report.pairs[0].subspace_overlap == pytest.approx(1.0, abs=1e-9)


def test_core_overlap_for_any_method_matches_dense_top_k():
    lib = library()
    names, weights, density = ["l1", "l2"], [0.8, -0.3], 0.2
    report = interference_report([read_adapter(lib[n]) for n in names], weights, core_density=density)
    a, b = (lora_deltas(lib[n]) for n in names)
    values = []
    for path in sorted(a.keys() & b.keys()):
        cores = []
        for d, w in ((a[path], weights[0]), (b[path], weights[1])):
            score = (w * d).abs().flatten()
            k = int(density * score.numel())
            cores.append(set(torch.topk(score, k).indices.tolist()))
        values.append(len(cores[0] & cores[1]) / min(len(cores[0]), len(cores[1])))
    pair = report.pairs[0]
    assert report.core_density == density
    assert pair.core_overlap == pytest.approx(math.sqrt(sum(v * v for v in values) / len(values)), abs=1e-9)
    assert pair.mean_core_overlap == pytest.approx(sum(values) / len(values), abs=1e-9)


def test_ia3_subspace_overlap_is_the_squared_cosine():
    lib = library()
    report = interference_report([read_adapter(lib["i1"]), read_adapter(lib["i2"])])
    a, b = ia3_vectors(lib["i1"]), ia3_vectors(lib["i2"])
    values = [
        float(torch.nn.functional.cosine_similarity((a[p] - 1).flatten(), (b[p] - 1).flatten(), dim=0)) ** 2
        for p in sorted(a.keys() & b.keys())
    ]
    assert report.pairs[0].mean_subspace_overlap == pytest.approx(sum(values) / len(values), abs=1e-6)
