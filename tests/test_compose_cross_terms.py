"""Linear cross-term error vs an independent dense formula: ||(sum w s B)(sum |w| A) - sum w s B A||."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from registry.compose import compose, interference_report
from registry.pem import LoraModule, PemAdapter, read_adapter
from tests.compose_helpers import library, lora_deltas, lora_factors


def dense_linear_error(folders: list[Path], weights: list[float]) -> float:
    """Relative Frobenius distance over all modules, from dense d x k matrices."""
    factors = [lora_factors(f) for f in folders]
    diff_sq = exact_sq = 0.0
    for path in sorted(set().union(*(f.keys() for f in factors))):
        b_sum = a_sum = exact = None
        for fac, w in zip(factors, weights, strict=True):
            if path not in fac:
                continue
            a, b, s = fac[path]
            b_sum = w * s * b if b_sum is None else b_sum + w * s * b
            a_sum = abs(w) * a if a_sum is None else a_sum + abs(w) * a
            exact = w * s * (b @ a) if exact is None else exact + w * s * (b @ a)
        assert b_sum is not None and a_sum is not None and exact is not None
        diff_sq += float(((b_sum @ a_sum) - exact).pow(2).sum())
        exact_sq += float(exact.pow(2).sum())
    return math.sqrt(diff_sq / exact_sq)


@pytest.mark.parametrize(
    ("names", "weights"),
    [
        (["l1", "l2"], [1.0, 1.0]),
        (["l1", "l2"], [0.5, 0.5]),
        (["l1", "l3", "l_qv"], [0.7, -0.4, 1.3]),  # alpha differs; l_qv has only q/v modules
        (["l_rs", "l2"], [0.5, 0.5]),  # rslora scale
    ],
)
def test_pair_and_overall_error_match_dense(names: list[str], weights: list[float]) -> None:
    lib = library()
    folders = [lib[n] for n in names]
    report = interference_report([read_adapter(f) for f in folders], weights)
    assert report.linear_cross_term_error == pytest.approx(dense_linear_error(folders, weights), rel=1e-4)
    for pair in report.pairs:
        pair_folders = [folders[pair.i], folders[pair.j]]
        expected = dense_linear_error(pair_folders, [weights[pair.i], weights[pair.j]])
        assert pair.linear_cross_term_error == pytest.approx(expected, rel=1e-4)


def test_independent_loras_are_far_and_linear_specs_warn() -> None:
    lib = library()
    adapters = [read_adapter(lib["l1"]), read_adapter(lib["l2"])]
    report = interference_report(adapters, [0.5, 0.5], names=["a", "b"], method="linear")
    assert report.linear_cross_term_error is not None and report.linear_cross_term_error > 0.25
    warning = [w for w in report.warnings if w.startswith("linear is")]
    assert len(warning) == 1 and "delta_cat" in warning[0] and "delta_svd" in warning[0]
    # the same inputs under delta_svd: numbers reported, no advice to switch
    other = interference_report(adapters, [0.5, 0.5], names=["a", "b"], method="delta_svd")
    assert other.linear_cross_term_error == report.linear_cross_term_error
    assert not [w for w in other.warnings if w.startswith("linear is")]
    # a higher threshold silences it
    quiet = interference_report(adapters, [0.5, 0.5], method="linear", cross_term_threshold=10.0)
    assert not [w for w in quiet.warnings if w.startswith("linear is")]


def _shared_init(seed: int, n: int, delta_scale: float) -> list[PemAdapter]:
    """n LoRAs sharing one A (the paper's setting: same init, A barely trained) with different B."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(4, 12, generator=gen)
    return [
        PemAdapter(
            pem_type="lora",
            config={"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q"]},
            modules={
                "m": LoraModule(
                    A=a + delta_scale * torch.randn(4, 12, generator=gen),
                    B=torch.randn(10, 4, generator=gen),
                    alpha=8.0,
                )
            },
            dtype="float32",
        )
        for _ in range(n)
    ]


def test_shared_init_with_unit_weights_is_exact_and_identical_inputs_cancel() -> None:
    # weights 1 and 1 on one shared A: linear gives (s B1 + s B2)(2 A) = 2 x exact, error exactly 1.0
    same_a = _shared_init(0, 2, 0.0)
    report = interference_report(same_a, [1.0, 1.0], check_base_model=False)
    assert report.linear_cross_term_error == pytest.approx(1.0, rel=1e-9)
    # lambda-merge 0.5/0.5 on a shared A: (0.5 s B1 + 0.5 s B2)(A) is the exact weighted sum
    half = interference_report(same_a, [0.5, 0.5], check_base_model=False)
    assert half.linear_cross_term_error == pytest.approx(0.0, abs=1e-9)
    # one input with weight 1: linear is that input itself
    single = interference_report(same_a[:1], [1.0], check_base_model=False)
    assert single.linear_cross_term_error == 0.0
    # x - x: both the exact sum and linear's (s B - s B)(2 A) are zero, so linear is exact here
    x = same_a[0]
    assert interference_report([x, x], [1.0, -1.0], check_base_model=False).linear_cross_term_error == 0.0
    # B2 = 2 B1, A2 = -A1 / 2: the exact sum is zero but linear gives (3 s B1)(A1 / 2), so a relative
    # error is undefined (None), not rounding noise
    m = x.modules["m"]
    y = PemAdapter(
        pem_type="lora",
        config=x.config,
        modules={"m": LoraModule(A=-0.5 * m.A, B=2.0 * m.B, alpha=m.alpha)},
        dtype="float32",
    )
    assert interference_report([x, y], [1.0, 1.0], check_base_model=False).linear_cross_term_error is None


def test_factor_form_equals_composer_output() -> None:
    # The "linear" side of the formula is what LoraComposer really produces.
    lib = library()
    adapters = [read_adapter(lib["l1"]), read_adapter(lib["l2"])]
    out = compose(adapters, [0.5, -0.3], "linear").adapter
    fac = [lora_factors(lib["l1"]), lora_factors(lib["l2"])]
    diff_sq = exact_sq = 0.0
    for path, m in out.modules.items():
        assert isinstance(m, LoraModule)
        produced = m.scale * (m.B.double() @ m.A.double())
        exact = 0.5 * fac[0][path][2] * (fac[0][path][1] @ fac[0][path][0]) - 0.3 * fac[1][path][2] * (
            fac[1][path][1] @ fac[1][path][0]
        )
        diff_sq += float((produced - exact).pow(2).sum())
        exact_sq += float(exact.pow(2).sum())
    report = interference_report(adapters, [0.5, -0.3])
    assert report.linear_cross_term_error == pytest.approx(math.sqrt(diff_sq / exact_sq), rel=1e-4)


def test_ia3_linear_is_exact_and_report_keys() -> None:
    lib = library()
    report = interference_report([read_adapter(lib["i1"]), read_adapter(lib["i2"])], [0.5, 0.5])
    assert report.linear_cross_term_error == 0.0
    d = report.to_dict()
    assert set(d) >= {"pairs", "warnings", "threshold", "linear_cross_term_error", "cross_term_threshold"}
    assert "linear_cross_term_error" in d["pairs"][0]


def test_equal_rank_cosines_come_from_the_gram_blocks_and_match_dense() -> None:
    # equal ranks: the cosines are read off the cross-term Gram blocks (other path than mixed ranks)
    lib = library()
    names = ["l1", "l3", "l_qv", "l_rs"]
    report = interference_report([read_adapter(lib[n]) for n in names], [0.5, -1.0, 2.0, 0.3])
    signs = [1.0, -1.0, 1.0, 1.0]
    for pair in report.pairs:
        da, db = lora_deltas(lib[names[pair.i]]), lora_deltas(lib[names[pair.j]])
        cos = [
            signs[pair.i]
            * signs[pair.j]
            * float(torch.nn.functional.cosine_similarity(da[p].flatten(), db[p].flatten(), dim=0))
            for p in sorted(da.keys() & db.keys())
        ]
        assert pair.modules == len(cos)
        assert pair.rms_cosine == pytest.approx(math.sqrt(sum(c * c for c in cos) / len(cos)), abs=1e-5)
        assert pair.mean_cosine == pytest.approx(sum(cos) / len(cos), abs=1e-5)
