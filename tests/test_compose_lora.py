"""LoRA methods against dense formulas computed here from the raw safetensors (docs/methods.md)."""

from __future__ import annotations

import math

import pytest
import torch

from registry.compose import compose
from registry.errors import IncompatibleAdapters
from registry.pem import read_adapter, write_adapter
from tests.compose_helpers import (
    assert_close,
    library,
    lora_deltas,
    lora_factors,
    weighted_delta_sum,
)


def out_deltas(result, tmp_path) -> dict[str, torch.Tensor]:
    """Deltas of the written output folder, so the config's r / alpha / rank_pattern are checked."""
    return lora_deltas(write_adapter(result.adapter, tmp_path / "out"))


def test_linear_is_factorwise_with_abs_on_a_and_signed_scaled_b(tmp_path):
    lib = library()
    names, weights = ["l1", "l2", "l3"], [0.7, -0.4, 1.3]
    result = compose([read_adapter(lib[n]) for n in names], weights, "linear")
    factors = [lora_factors(lib[n]) for n in names]
    expected = {}
    for path in factors[0]:
        a = sum(abs(w) * f[path][0] for w, f in zip(weights, factors, strict=True))
        b = sum(w * f[path][2] * f[path][1] for w, f in zip(weights, factors, strict=True))
        assert_close(result.adapter.modules[path].A, a)
        assert_close(result.adapter.modules[path].B, b)
        expected[path] = b @ a  # output scale is 1 (alpha = r)
    got = out_deltas(result, tmp_path)
    for path, d in expected.items():
        assert_close(got[path], d)
    assert result.adapter.config["lora_alpha"] == result.adapter.config["r"] == 4


def test_negation_gives_a_and_minus_scaled_b():
    lib = library()
    (a, b, s) = lora_factors(lib["l3"])["model.layers.0.self_attn.q_proj"]
    out = compose([read_adapter(lib["l3"])], [-1.0], "linear").adapter.modules[
        "model.layers.0.self_attn.q_proj"
    ]
    assert torch.equal(out.A.double(), a)
    assert_close(out.B, -s * b, 1e-7)
    assert out.scale == 1.0


@pytest.mark.parametrize("weights", [[1.0, 1.0], [0.5, -1.5], [-2.0, 0.25]])
def test_delta_cat_is_the_exact_weighted_sum(tmp_path, weights):
    lib = library()
    result = compose([read_adapter(lib["l1"]), read_adapter(lib["l_r8"])], weights, "delta_cat")
    expected = weighted_delta_sum([lib["l1"], lib["l_r8"]], weights)
    got = out_deltas(result, tmp_path)
    assert set(got) == set(expected)
    for path, d in expected.items():
        assert_close(got[path], d)
    assert result.adapter.config["r"] == 12  # 4 + 8


def test_x_minus_x_under_delta_cat_is_exactly_zero():
    x = read_adapter(library()["l1"])
    result = compose([x, x], [1.0, -1.0], "delta_cat")
    for m in result.adapter.modules.values():
        assert torch.count_nonzero(m.B @ m.A) == 0


def dense_truncated(delta: torch.Tensor, k: int) -> tuple[torch.Tensor, float]:
    u, s, vh = torch.linalg.svd(delta, full_matrices=False)
    energy = s.square()
    return (u[:, :k] * s[:k]) @ vh[:k], float(energy[:k].sum() / energy.sum())


@pytest.mark.parametrize("rank", [None, 2, 12])
def test_delta_svd_is_the_truncated_svd_of_the_sum(tmp_path, rank):
    lib = library()
    folders, weights = [lib["l1"], lib["l2"], lib["l_r8"]], [0.5, -0.8, 1.1]
    result = compose([read_adapter(f) for f in folders], weights, "delta_svd", rank=rank)
    k = rank or 8  # default: max input rank
    got = out_deltas(result, tmp_path)
    for path, d in weighted_delta_sum(folders, weights).items():
        best, energy = dense_truncated(d, k)
        assert_close(got[path], best, 1e-4)
        assert result.modules[path]["retained_energy"] == pytest.approx(energy, abs=1e-5)
        assert result.modules[path]["rank"] == k
    assert result.adapter.config["r"] == k and result.adapter.config["rank_pattern"] == {}


def test_delta_svd_full_rank_retains_all_energy():
    lib = library()
    result = compose([read_adapter(lib["l1"]), read_adapter(lib["l2"])], [1.0, 1.0], "delta_svd", rank=8)
    assert result.summary["min_retained_energy"] == pytest.approx(1.0, abs=1e-6)


def test_missing_modules_contribute_zero(tmp_path):
    lib = library()
    folders, weights = [lib["l1"], lib["l_qv"]], [1.0, -0.5]
    for method in ("linear", "delta_cat", "delta_svd"):
        result = compose([read_adapter(f) for f in folders], weights, method, rank=8)
        got = out_deltas(result, tmp_path / method)
        expected = weighted_delta_sum(folders, weights)
        if method == "linear":  # factor-wise: only modules present in both differ from the sum
            expected = {p: d for p, d in expected.items() if "q_proj" not in p and "v_proj" not in p}
        for path, d in expected.items():
            assert_close(got[path], d, 1e-4)
    # delta_cat: per-module ranks differ (8 where both, 4 elsewhere) -> rank_pattern in the config
    out = compose([read_adapter(f) for f in folders], weights, "delta_cat").adapter
    cat = out.config
    declared = {p: cat["rank_pattern"].get(p, cat["r"]) for p in out.modules}
    assert declared == {p: 8 if ("q_proj" in p or "v_proj" in p) else 4 for p in out.modules}


def test_rslora_scale_is_alpha_over_sqrt_r(tmp_path):
    lib = library()
    (a, b, s) = lora_factors(lib["l_rs"])["model.layers.1.self_attn.o_proj"]
    assert s == pytest.approx(6 / math.sqrt(4))
    result = compose([read_adapter(lib["l_rs"]), read_adapter(lib["l1"])], [1.0, 1.0], "delta_cat")
    expected = weighted_delta_sum([lib["l_rs"], lib["l1"]], [1.0, 1.0])
    got = out_deltas(result, tmp_path)
    assert_close(got["model.layers.1.self_attn.o_proj"], expected["model.layers.1.self_attn.o_proj"])
    assert result.adapter.config["use_rslora"] is False


@pytest.mark.parametrize(("name", "dtype"), [("l_f16", torch.float16), ("l_bf16", torch.bfloat16)])
def test_half_precision_inputs_compute_in_float32_and_keep_dtype(tmp_path, name, dtype):
    lib = library()
    x = read_adapter(lib[name])
    assert x.metadata()["dtype"] == str(dtype).removeprefix("torch.")
    result = compose([x, x], [0.5, 0.25], "delta_svd")
    assert result.adapter.dtype == x.dtype
    assert all(m.A.dtype == dtype and m.B.dtype == dtype for m in result.adapter.modules.values())
    expected = weighted_delta_sum([lib[name]], [0.75])
    got = out_deltas(result, tmp_path)
    for path, d in expected.items():
        assert_close(got[path], d, 2e-2)  # half-precision output rounding only


def test_mixed_dtypes_promote():
    lib = library()
    result = compose([read_adapter(lib["l1"]), read_adapter(lib["l_f16"])], [1.0, 1.0], "delta_cat")
    assert result.adapter.dtype == "float32"


def test_linear_refuses_mixed_ranks_and_suggests_delta_svd():
    lib = library()
    with pytest.raises(IncompatibleAdapters, match=r"module .*_proj.*ranks differ.*delta_svd"):
        compose([read_adapter(lib["l1"]), read_adapter(lib["l_r8"])], [1.0, 1.0], "linear")


def test_x_minus_x_under_delta_svd_is_exactly_zero():
    x = read_adapter(library()["l2"])
    result = compose([x, x], [0.5, -0.5], "delta_svd")
    for m in result.adapter.modules.values():
        assert torch.count_nonzero(m.B @ m.A) == 0
    assert result.summary["min_retained_energy"] == 1.0


def test_compose_restores_the_callers_thread_count():
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # not the 1 compose sets (scripts/test.sh runs the suite on one thread)
    try:
        x = read_adapter(library()["l1"])
        compose([x], [1.0], "delta_svd", threads=1)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
