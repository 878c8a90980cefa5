"""Iso-C, reimplemented here on dense float64 deltas from the contract: thin SVD of the exact sum
sum_i T_i = U S V^T, k = rank (default min(sum r_i, d, k)), s_bar = mean of the top k singular values,
result scale * s_bar * U_k V_k^T."""

from __future__ import annotations

import pytest
import torch

from registry.compose import compose
from registry.errors import InvalidInput
from registry.pem import read_adapter
from registry.spec import load_spec
from tests.compose_helpers import assert_close, library, lora_product, thin_svd, weighted_delta_sum

NAMES, WEIGHTS = ["l1", "l_r8", "l_rs"], [0.6, -0.9, 0.4]  # ranks 4, 8, 4 (l_rs: rslora scale)


def iso_c_reference(total, rank, scale):
    u, s, vh = thin_svd(total)
    k = min(rank, s.numel())
    return scale * s[:k].mean() * u[:, :k] @ vh[:k], s[:k].mean()


@pytest.mark.parametrize(("rank", "scale"), [(None, 1.0), (5, 1.0), (12, 1.6)])
def test_iso_c_matches_the_dense_formula_and_its_spectrum_is_flat(rank, scale):
    lib = library()
    method_params = {"scale": scale}
    result = compose(
        [read_adapter(lib[n]) for n in NAMES], WEIGHTS, "iso_c", rank=rank, method_params=method_params
    )
    exact = weighted_delta_sum([lib[n] for n in NAMES], WEIGHTS)
    k = rank or min(16, 32)  # min(sum r_i, d, k)
    for path, m in result.adapter.modules.items():
        expected, s_bar = iso_c_reference(exact[path], k, scale)
        got = lora_product(m)
        assert_close(got, expected, 1e-4)
        spectrum = torch.linalg.svdvals(got)
        nonzero = spectrum[spectrum > spectrum[0] * 1e-6]
        assert nonzero.numel() == k
        torch.testing.assert_close(nonzero, torch.full_like(nonzero, scale * float(s_bar)), rtol=1e-5, atol=0)
        assert result.modules[path]["s_bar"] == pytest.approx(float(s_bar), rel=1e-5)


def test_iso_c_of_x_minus_x_is_zero():
    lib = library()
    x = read_adapter(lib["l1"])
    result = compose([x, x], [1.0, -1.0], "iso_c")
    assert all(not m.B.any() and not m.A.any() for m in result.adapter.modules.values())


def test_iso_c_params_are_checked_from_the_declaration():
    base = "name: acme/x\nexpression: acme/a + acme/b\nmethod: iso_c\n"
    assert load_spec(base + "rank: 8\nparams: {scale: 1.3}\n").params == {"scale": 1.3}
    with pytest.raises(InvalidInput, match=r"params\.scale must be > 0, got 0"):
        load_spec(base + "params: {scale: 0}\n")
    with pytest.raises(InvalidInput, match="density applies to"):
        load_spec(base + "density: 0.5\n")
