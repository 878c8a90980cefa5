"""Interference report: pairwise cosine of the inputs' deltas, RMS over the modules they share.

LoRA inner products come from the factors (r x r Gram products), never from d x k deltas; (IA)3
uses (l - 1). With weights, the cosine of w_i D_i and w_j D_j carries sign(w_i w_j).

For LoRA it also says how far the factor-wise `linear` merge is from the exact weighted delta sum
(compose/cross_terms.py), per pair and for all inputs; (IA)3 `linear` is exact, so 0 there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from registry.compose.base import MethodParams, get_composer
from registry.compose.checks import check_adapters
from registry.compose.cross_terms import ModuleGrams, module_grams, relative_error, squared_errors
from registry.compose.device import compute_device
from registry.pem import PemAdapter

# Naive-summation study: perplexity change grew roughly linearly with RMS cosine; above ~0.3 the
# deltas overlap enough that a plain sum is worth a second look.
DEFAULT_THRESHOLD = 0.3
# Relative Frobenius distance of `linear` from the exact weighted sum above which a linear spec is
# warned: a quarter of the intended delta is already a different model.
DEFAULT_CROSS_TERM_THRESHOLD = 0.25


@dataclass
class PairInterference:
    i: int
    j: int
    rms_cosine: float
    mean_cosine: float
    max_abs_cosine: float
    modules: int  # modules where both deltas are non-zero
    # ||linear(w_i x_i + w_j x_j) - (w_i D_i + w_j D_j)||_F / ||w_i D_i + w_j D_j||_F over the modules
    # either input has; None where linear cannot run (ranks differ) or the exact sum is zero.
    linear_cross_term_error: float | None = None


@dataclass
class InterferenceReport:
    threshold: float
    pairs: list[PairInterference] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    linear_cross_term_error: float | None = None  # the same distance with all inputs together
    cross_term_threshold: float = DEFAULT_CROSS_TERM_THRESHOLD

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def interference_report(
    adapters: Sequence[PemAdapter],
    weights: Sequence[float] | None = None,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    names: Sequence[str] | None = None,
    check_base_model: bool = True,
    method: str | None = None,
    cross_term_threshold: float = DEFAULT_CROSS_TERM_THRESHOLD,
) -> InterferenceReport:
    """Pairwise RMS-over-modules cosine; a warning for each pair with rms_cosine > threshold.

    When `method` is `linear`, a LoRA composition whose linear cross-term error (all inputs) exceeds
    `cross_term_threshold` also gets a warning suggesting delta_cat / delta_svd.
    """
    report = InterferenceReport(threshold=threshold, cross_term_threshold=cross_term_threshold)
    if not adapters:
        return report
    check_adapters(adapters, MethodParams("delta_cat"), check_base_model=check_base_model)
    composer = get_composer(adapters[0].pem_type)
    device = compute_device()
    labels = list(names) if names else [f"input {i}" for i in range(len(adapters))]
    signs = [1.0 if w >= 0 else -1.0 for w in (weights or [1.0] * len(adapters))]
    norms = [
        {p: math.sqrt(max(composer.inner(m, m, device), 0.0)) for p, m in a.modules.items()} for a in adapters
    ]
    grams = _linear_grams(adapters, weights, device)
    for i in range(len(adapters)):
        for j in range(i + 1, len(adapters)):
            cosines = []
            for path in sorted(adapters[i].modules.keys() & adapters[j].modules.keys()):
                denom = norms[i][path] * norms[j][path]
                if denom > 0:
                    inner = composer.inner(adapters[i].modules[path], adapters[j].modules[path], device)
                    cosines.append(signs[i] * signs[j] * inner / denom)
            n = len(cosines)
            pair = PairInterference(
                i=i,
                j=j,
                rms_cosine=math.sqrt(sum(c * c for c in cosines) / n) if n else 0.0,
                mean_cosine=sum(cosines) / n if n else 0.0,
                max_abs_cosine=max((abs(c) for c in cosines), default=0.0),
                modules=n,
                linear_cross_term_error=_linear_error(grams, [i, j]),
            )
            report.pairs.append(pair)
            if pair.rms_cosine > threshold:
                report.warnings.append(
                    f"{labels[i]} and {labels[j]} interfere: RMS cosine {pair.rms_cosine:.3f} > {threshold}"
                )
    report.linear_cross_term_error = _linear_error(grams, list(range(len(adapters))))
    error = report.linear_cross_term_error
    if method == "linear" and error is not None and error > cross_term_threshold:
        report.warnings.append(
            f"linear is {error:.0%} away from the exact weighted delta sum (cross terms B_i A_j, "
            f"> {cross_term_threshold:g}): the inputs do not share an initialisation; "
            "use delta_cat (exact sum) or delta_svd (best rank-k)"
        )
    return report


def _linear_grams(
    adapters: Sequence[PemAdapter], weights: Sequence[float] | None, device: Any
) -> list[ModuleGrams | None] | None:
    """Per-module Grams for the cross-term error (LoRA only); None for (IA)3, whose linear is exact."""
    if not adapters or adapters[0].pem_type != "lora":
        return None
    w = [float(x) for x in (weights or [1.0] * len(adapters))]
    paths = sorted(set().union(*(a.modules.keys() for a in adapters)))
    return [module_grams([a.modules.get(p) for a in adapters], w, device) for p in paths]


def _linear_error(grams: list[ModuleGrams | None] | None, subset: list[int]) -> float | None:
    if grams is None:
        return 0.0  # (IA)3: l = 1 + sum w_i (l_i - 1) is the exact weighted sum
    if any(g is None for g in grams):
        return None  # ranks differ somewhere: linear refuses these inputs
    totals = [0.0, 0.0, 0.0]
    for g in grams:
        assert g is not None
        for k, value in enumerate(squared_errors(g, subset)):
            totals[k] += value
    return relative_error(*totals)
