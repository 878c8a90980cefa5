"""TSV-M, reimplemented here on dense float64 deltas from the contract: per input, the thin SVD of T_i
and its top k_i = min(r_i, per_input_rank) triplets; U = [U_1 ..], V = [V_1 ..] orthogonalised by their
polar factors (U = P Sigma Q^T -> P Q^T); result scale * U_o S V_o^T."""

from __future__ import annotations

import pytest
import torch

from registry.compose import check_adapters, compose
from registry.compose.base import MethodParams
from registry.errors import InvalidInput
from registry.pem import read_adapter
from tests.compose_helpers import assert_close, library, lora_deltas, lora_product, thin_svd

NAMES, WEIGHTS = ["l1", "l_r8", "l_rs"], [0.6, -0.9, 0.4]  # ranks 4, 8, 4 (l_rs: rslora scale)


def polar(m: torch.Tensor) -> torch.Tensor:
    p, _, qh = torch.linalg.svd(m, full_matrices=False)
    return p @ qh


def tsv_reference(ts, per_input_rank, scale):
    us, ss, vs = [], [], []
    for t in ts:
        u, s, vh = thin_svd(t)
        k = s.numel() if per_input_rank is None else min(per_input_rank, s.numel())
        us.append(u[:, :k])
        ss.append(s[:k])
        vs.append(vh[:k].T)
    return scale * polar(torch.cat(us, 1)) @ torch.diag(torch.cat(ss)) @ polar(torch.cat(vs, 1)).T


@pytest.mark.parametrize(("per_input_rank", "scale"), [(None, 1.0), (3, 1.0), (2, 0.7)])
def test_tsv_matches_the_dense_formula(per_input_rank, scale):
    lib = library()
    params = {"scale": scale} | ({} if per_input_rank is None else {"per_input_rank": per_input_rank})
    result = compose([read_adapter(lib[n]) for n in NAMES], WEIGHTS, "tsv", method_params=params)
    deltas = [lora_deltas(lib[n]) for n in NAMES]
    kept = sum(r if per_input_rank is None else min(r, per_input_rank) for r in (4, 8, 4))
    for path, m in result.adapter.modules.items():
        ts = [w * d[path] for w, d in zip(WEIGHTS, deltas, strict=True)]
        assert_close(lora_product(m), tsv_reference(ts, per_input_rank, scale), 1e-4)
        assert m.A.shape[0] == kept  # K = sum_i k_i
    assert result.params["per_input_rank"] == per_input_rank and result.params["scale"] == scale


def test_tsv_of_one_input_is_its_own_truncation():
    lib = library()
    result = compose([read_adapter(lib["l_r8"])], [-1.5], "tsv", method_params={"per_input_rank": 3})
    for path, d in lora_deltas(lib["l_r8"]).items():
        u, s, vh = torch.linalg.svd(-1.5 * d)
        assert_close(lora_product(result.adapter.modules[path]), u[:, :3] @ torch.diag(s[:3]) @ vh[:3], 1e-5)


def test_tsv_refuses_more_kept_vectors_than_the_module_has_naming_it():
    lib = library()
    names = ["l1", "l_r8", "l_rs", "l3", "l2", "l_r8"]  # K = 4 + 8 + 4 + 4 + 4 + 8 = 32 = min(d, k)
    adapters = [read_adapter(lib[n]) for n in names]
    assert compose(adapters, [1.0] * 6, "tsv").adapter.metadata()["r"] == 32
    adapters.append(read_adapter(lib["l1"]))  # K = 36 > 32
    with pytest.raises(
        InvalidInput, match=r"module 'model.layers.0.self_attn.k_proj': tsv keeps K = 36"
    ) as exc:
        compose(adapters, [1.0] * 7, "tsv")
    assert exc.value.field == "params.per_input_rank"
    # before any arithmetic: the dry run's check (`:validate`) refuses it from the headers alone
    with pytest.raises(InvalidInput, match="more than min"):
        check_adapters(adapters, MethodParams("tsv"))
    assert (
        compose(adapters, [1.0] * 7, "tsv", method_params={"per_input_rank": 4}).adapter.metadata()["r"] == 28
    )


@pytest.mark.parametrize("method", ["knots", "tsv", "iso_c"])
def test_ia3_inputs_are_refused_naming_method_and_the_supported_types(method):
    lib = library()
    ia3 = [read_adapter(lib["i1"]), read_adapter(lib["i2"])]
    # check_adapters is what `:validate` and the dry run run on the inputs' headers
    for attempt in (
        lambda: check_adapters(ia3, MethodParams(method)),
        lambda: compose(ia3, [1.0, 1.0], method),
    ):
        with pytest.raises(InvalidInput, match=rf"^method {method} supports PEM types lora, not ia3$") as exc:
            attempt()
        assert exc.value.field == "method"
