"""(IA)3 arithmetic around the identity: l = 1 + sum_i w_i (l_i - 1) (docs/methods.md)."""

from __future__ import annotations

import pytest
import torch

from registry.compose import compose
from registry.pem import read_adapter, write_adapter
from tests.compose_helpers import assert_close, ia3_vectors, library


@pytest.mark.parametrize("method", ["linear", "delta_cat", "delta_svd"])
def test_linear_methods_sum_around_identity_with_missing_modules(tmp_path, method):
    lib = library()
    names, weights = ["i1", "i2", "i_sub"], [0.7, -0.3, 1.5]
    result = compose([read_adapter(lib[n]) for n in names], weights, method)
    got = ia3_vectors(write_adapter(result.adapter, tmp_path / "out"))
    vectors = [ia3_vectors(lib[n]) for n in names]
    assert set(got) == set(vectors[0])  # union of targets (i_sub's are a subset)
    for path, l_out in got.items():
        # a module missing from an input is the identity: contributes (1 - 1) = 0
        expected = 1 + sum(w * (v[path] - 1) for v, w in zip(vectors, weights, strict=True) if path in v)
        assert_close(l_out, expected, 1e-6)


def test_negation_is_two_minus_l():
    lib = library()
    out = compose([read_adapter(lib["i1"])], [-1.0], "linear").adapter
    for path, v in ia3_vectors(lib["i1"]).items():
        assert_close(out.modules[path].l, 2 - v, 1e-7)


def test_half_plus_half_of_itself_is_itself_exactly():
    x = read_adapter(library()["i1"])
    out = compose([x, x], [0.5, 0.5], "linear").adapter
    for path, m in x.modules.items():
        assert torch.equal(out.modules[path].l, m.l)


def test_output_config_keeps_feedforward_modules(tmp_path):
    lib = library()
    result = compose([read_adapter(lib["i1"]), read_adapter(lib["i_sub"])], [1.0, 1.0], "linear")
    cfg = result.adapter.config
    assert cfg["peft_type"] == "IA3"
    assert cfg["feedforward_modules"] == ["down_proj"]
    assert sorted(cfg["target_modules"]) == ["down_proj", "k_proj", "v_proj"]
    back = read_adapter(write_adapter(result.adapter, tmp_path / "o"))
    assert back.metadata()["r"] is None and back.metadata()["pem_type"] == "ia3"
