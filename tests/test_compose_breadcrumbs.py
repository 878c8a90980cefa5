"""Model Breadcrumbs, reimplemented here from its definition on dense deltas (float64): rank every entry
of each D_i by |value| (largest first, ties by flat position), drop the first int(gamma * n), keep the
next int(density * n), drop the rest; the result is sum_i w_i * kept(D_i)."""

from __future__ import annotations

import pytest
import torch

from registry.compose import compose
from registry.errors import InvalidInput
from registry.pem import read_adapter
from registry.spec import CompositionSpec
from tests.compose_helpers import assert_close, ia3_vectors, library, lora_deltas


def band(t: torch.Tensor, density: float, gamma: float) -> torch.Tensor:
    flat = t.flatten().tolist()
    ranked = sorted(range(len(flat)), key=lambda i: (-abs(flat[i]), i))
    top, keep = int(gamma * len(flat)), int(density * len(flat))
    kept = set(ranked[top : top + keep])
    return torch.tensor([v if i in kept else 0.0 for i, v in enumerate(flat)], dtype=torch.float64).view_as(t)


@pytest.mark.parametrize(("density", "gamma"), [(0.4, 0.05), (0.9, 0.2), (0.5, 0.0)])
def test_lora_breadcrumbs_on_dense_deltas_at_full_rank(density: float, gamma: float) -> None:
    lib = library()
    names, weights = ["l1", "l2", "l3"], [0.6, -0.9, 0.4]
    result = compose(
        [read_adapter(lib[n]) for n in names],
        weights,
        "breadcrumbs",
        rank=32,
        density=density,
        method_params={"gamma": gamma},
    )
    deltas = [lora_deltas(lib[n]) for n in names]
    for path, m in result.adapter.modules.items():
        expected = sum(
            w * band(d[path].double(), density, gamma) for d, w in zip(deltas, weights, strict=True)
        )
        assert_close(m.scale * (m.B.double() @ m.A.double()), expected, 1e-4)


def test_ia3_breadcrumbs_acts_on_l_minus_one() -> None:
    lib = library()
    names, weights = ["i1", "i2"], [0.5, -1.0]
    result = compose([read_adapter(lib[n]) for n in names], weights, "breadcrumbs", density=0.5)
    vectors = [ia3_vectors(lib[n]) for n in names]
    for path, m in result.adapter.modules.items():
        expected = sum(
            w * band((v[path] - 1).double(), 0.5, 0.01)  # gamma's declared default
            for v, w in zip(vectors, weights, strict=True)
            if path in v
        )
        assert_close(m.l.double(), 1 + expected, 1e-6)


def test_gamma_is_checked_from_the_declaration() -> None:
    base = {"name": "t/x", "method": "breadcrumbs", "density": 0.5, "expression": "t/a + t/b"}
    assert CompositionSpec.model_validate({**base, "params": {"gamma": 0.1}}).params == {"gamma": 0.1}
    for bad in (1.5, -0.1, "much"):
        with pytest.raises((ValueError, InvalidInput), match="params.gamma"):
            CompositionSpec.model_validate({**base, "params": {"gamma": bad}})
    with pytest.raises((ValueError, InvalidInput), match="density"):
        CompositionSpec.model_validate({k: v for k, v in base.items() if k != "density"})
