"""DELLA, reimplemented here on dense float64 deltas from the contract: per input, ranks of |D_i|
(0 = smallest, equal values by flat position), keep probabilities p = density - eps/2 + eps * rank /
(n - 1), a keep where torch.rand(seed = crc32("seed/module/index")) < p, kept entries / p, times w_i;
then TIES's election and disjoint mean; LoRA recompressed (here at full rank, so exactly)."""

from __future__ import annotations

import zlib

import pytest
import torch

from registry.compose import compose, compose_files
from registry.errors import InvalidInput
from registry.pem import read_adapter
from registry.spec import load_spec
from tests.compose_helpers import assert_close, ia3_vectors, library, lora_deltas, lora_product, ties_elect


def magprune(d: torch.Tensor, density: float, epsilon: float, seed: int, module: str, index: int):
    flat = d.flatten().tolist()
    order = sorted(range(len(flat)), key=lambda j: (abs(flat[j]), j))
    rank = torch.empty(len(flat), dtype=torch.float64)
    rank[order] = torch.arange(len(flat), dtype=torch.float64)
    p = (density - epsilon / 2 + epsilon * rank / (len(flat) - 1)).view_as(d)
    gen = torch.Generator().manual_seed(zlib.crc32(f"{seed}/{module}/{index}".encode()))
    keep = torch.rand(d.shape, generator=gen) < p
    return torch.where(keep, d / p, 0.0)


@pytest.mark.parametrize(
    ("density", "epsilon", "sign", "seed"), [(0.5, 0.1, "total", 0), (0.3, 0.4, "frequency", 7)]
)
def test_lora_della_matches_the_dense_formula(density, epsilon, sign, seed):
    lib = library()
    names, weights = ["l1", "l_r8", "l_rs"], [0.6, -0.9, 0.4]
    result = compose(
        [read_adapter(lib[n]) for n in names],
        weights,
        "della",
        rank=32,
        density=density,
        majority_sign=sign,
        seed=seed,
        method_params={"epsilon": epsilon},
    )
    deltas = [lora_deltas(lib[n]) for n in names]
    for path, m in result.adapter.modules.items():
        kept = [
            w * magprune(d[path], density, epsilon, seed, path, i)
            for i, (w, d) in enumerate(zip(weights, deltas, strict=True))
        ]
        # magnitudes within float32 rounding of each other may rank swapped (the engine works in
        # float32), which moves p by epsilon / (n - 1): a relative 1e-3 on that entry, far below what
        # a wrong rule (a flipped keep, a wrong spread) costs
        assert_close(lora_product(m), ties_elect(kept, sign), 2e-3)


def test_ia3_della_acts_on_l_minus_one():
    lib = library()
    names, weights = ["i1", "i2"], [0.5, -1.0]
    result = compose([read_adapter(lib[n]) for n in names], weights, "della", density=0.6, seed=3)
    vectors = [ia3_vectors(lib[n]) for n in names]
    for path, m in result.adapter.modules.items():
        kept = [
            w * magprune(v[path] - 1, 0.6, 0.1, 3, path, i)
            for i, (w, v) in enumerate(zip(weights, vectors, strict=True))
        ]
        assert_close(m.l.double(), 1 + ties_elect(kept, "total"), 1e-6)


def test_same_seed_same_output_whatever_the_name_another_seed_differs(tmp_path):
    lib = library()
    folders = [lib["l1"], lib["l2"], lib["l3"]]

    def run(out: str, seed: int) -> dict[str, torch.Tensor]:
        compose_files(folders, [0.5, 0.7, -0.4], tmp_path / out, "della", density=0.4, seed=seed)
        return {p: lora_product(m) for p, m in read_adapter(tmp_path / out).modules.items()}

    first, renamed, other = run("acme-math", 11), run("other-name", 11), run("acme-math-2", 12)
    assert all(torch.equal(first[p], renamed[p]) for p in first)
    assert any(not torch.allclose(first[p], other[p]) for p in first)


def test_epsilon_is_checked_against_density_at_the_spec_and_in_the_engine():
    base = "name: acme/x\nexpression: acme/a + acme/b\nmethod: della\n"
    assert load_spec(base + "density: 0.5\nparams: {epsilon: 0.2}\n").params == {"epsilon": 0.2}
    with pytest.raises(InvalidInput, match=r"params\.epsilon.*= \[0, 0\.1\], which must lie in \(0, 1\]"):
        load_spec(base + "density: 0.05\n")
    with pytest.raises(InvalidInput, match="method della needs density"):
        load_spec(base)
    lib = library()
    pair = [read_adapter(lib["l1"]), read_adapter(lib["l2"])]
    with pytest.raises(InvalidInput, match="which must lie in") as exc:
        compose(pair, [1.0, 1.0], "della", density=1.0)  # p up to 1.05
    assert exc.value.field == "params.epsilon"
    assert (
        compose(pair, [1.0, 1.0], "della", density=1.0, method_params={"epsilon": 0.0}).params["epsilon"]
        == 0.0
    )
