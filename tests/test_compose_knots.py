"""KnOTS, reimplemented here on dense float64 deltas from the contract: M = [T_1 .. T_n] = U S V^T (thin
SVD, each pair signed so that the largest-|entry| of u_j is positive), V^T split into blocks V_i^T,
merged (linear: sum; ties: the TIES rule on the blocks), result U S V*^T, truncated to `rank` by its
SVD."""

from __future__ import annotations

import pytest
import torch

from registry.compose import compose
from registry.errors import InvalidInput
from registry.pem import read_adapter
from registry.spec import load_spec
from tests.compose_helpers import (
    assert_close,
    library,
    lora_deltas,
    lora_product,
    thin_svd,
    ties_elect,
    top_magnitude,
    weighted_delta_sum,
)

NAMES, WEIGHTS = ["l1", "l_r8", "l_rs"], [0.6, -0.9, 0.4]  # ranks 4, 8, 4 (l_rs: rslora scale)


def knots_reference(ts, merge, density, sign, rank):
    u, s, vh = thin_svd(torch.cat(ts, dim=1))
    signs = torch.sign(u[u.abs().argmax(0), torch.arange(u.shape[1])])
    u, vh = u * signs, vh * signs[:, None]
    blocks = list(vh.split(ts[0].shape[1], dim=1))
    if merge == "linear":
        merged = sum(blocks)
    else:
        merged = ties_elect([top_magnitude(b, density) for b in blocks], sign)
    result = u @ torch.diag(s) @ merged
    if rank is None:
        return result
    p, sigma, qh = torch.linalg.svd(result)
    return p[:, :rank] @ torch.diag(sigma[:rank]) @ qh[:rank]


def weighted(names, weights):
    lib = library()
    deltas = [lora_deltas(lib[n]) for n in names]
    return lambda path: [w * d[path] for w, d in zip(weights, deltas, strict=True)]


@pytest.mark.parametrize(
    ("merge", "density", "sign", "rank"),
    [
        ("linear", None, "total", None),
        ("linear", None, "total", 6),
        ("ties", 0.5, "total", None),
        ("ties", 0.3, "frequency", 10),
        ("ties", None, "total", None),  # density's default 1.0: election and disjoint mean only
    ],
)
def test_knots_matches_the_dense_formula(merge, density, sign, rank):
    lib = library()
    result = compose(
        [read_adapter(lib[n]) for n in NAMES],
        WEIGHTS,
        "knots",
        rank=rank,
        density=density,
        majority_sign=sign,
        method_params={"merge": merge},
    )
    ts = weighted(NAMES, WEIGHTS)
    for path, m in result.adapter.modules.items():
        expected = knots_reference(ts(path), merge, 1.0 if density is None else density, sign, rank)
        assert_close(lora_product(m), expected, 1e-4)
        assert m.A.shape[0] == (rank or 16)  # rank, or sum_i r_i (zero-padded past R)
    assert result.params["merge"] == merge and result.params["density"] == (density or 1.0)


def test_knots_linear_is_the_exact_weighted_sum():
    lib = library()
    result = compose([read_adapter(lib[n]) for n in NAMES], WEIGHTS, "knots")
    exact = weighted_delta_sum([lib[n] for n in NAMES], WEIGHTS)
    for path, m in result.adapter.modules.items():
        assert_close(lora_product(m), exact[path], 1e-5)
        assert result.modules[path]["aligned_rank"] == 16


def test_knots_fields_come_from_the_declaration():
    base = "name: acme/x\nexpression: acme/a + acme/b\nmethod: knots\n"
    spec = load_spec(base + "density: 0.4\nrank: 8\nparams: {merge: ties}\n")
    assert spec.params == {"merge": "ties"} and spec.density == 0.4
    with pytest.raises(InvalidInput, match=r"params\.merge.*must be one of linear, ties"):
        load_spec(base + "params: {merge: dare}\n")
    with pytest.raises(InvalidInput, match=r"params\.scale.*takes no parameter 'scale'"):
        load_spec(base + "params: {scale: 2.0}\n")
    with pytest.raises(InvalidInput, match=r"knots needs density in \(0, 1\], got 1.5") as exc:
        compose([read_adapter(library()[n]) for n in NAMES], WEIGHTS, "knots", density=1.5)
    assert exc.value.field == "density"


def test_knots_end_to_end_from_folders_loads_in_peft(tmp_path):
    """compose_files (the streaming engine the flow runs) writes a PEFT folder that PeftModel loads;
    its merged weights are the base plus the exact weighted sum (knots with merge: linear)."""
    from peft import PeftModel

    from registry.compose import compose_files
    from tests.factories import tiny_model

    lib = library()
    result = compose_files([lib[n] for n in NAMES], WEIGHTS, tmp_path / "out", "knots", rank=16)
    assert result.adapter.metadata()["r"] == 16
    merged = PeftModel.from_pretrained(tiny_model("llama"), tmp_path / "out").merge_and_unload()
    base = dict(tiny_model("llama").named_parameters())
    exact = weighted_delta_sum([lib[n] for n in NAMES], WEIGHTS)
    for name, weight in merged.named_parameters():
        path = name.removesuffix(".weight")
        expected = exact.get(path, torch.zeros_like(weight, dtype=torch.float64))
        assert_close(weight.detach().double() - base[name].detach().double(), expected, 1e-4)
