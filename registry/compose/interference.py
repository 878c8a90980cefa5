"""Interference report: pairwise cosine of the inputs' deltas, RMS over the modules they share.

LoRA inner products come from the factors (r x r Gram products), never from d x k deltas; (IA)3
uses (l - 1). With weights, the cosine of w_i D_i and w_j D_j carries sign(w_i w_j).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from registry.compose.base import MethodParams, get_composer
from registry.compose.checks import check_adapters
from registry.compose.device import compute_device
from registry.pem import PemAdapter

# Naive-summation study: perplexity change grew roughly linearly with RMS cosine; above ~0.3 the
# deltas overlap enough that a plain sum is worth a second look.
DEFAULT_THRESHOLD = 0.3


@dataclass
class PairInterference:
    i: int
    j: int
    rms_cosine: float
    mean_cosine: float
    max_abs_cosine: float
    modules: int  # modules where both deltas are non-zero


@dataclass
class InterferenceReport:
    threshold: float
    pairs: list[PairInterference] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def interference_report(
    adapters: Sequence[PemAdapter],
    weights: Sequence[float] | None = None,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    names: Sequence[str] | None = None,
    check_base_model: bool = True,
) -> InterferenceReport:
    """Pairwise RMS-over-modules cosine; a warning for each pair with rms_cosine > threshold."""
    if adapters:
        check_adapters(adapters, MethodParams("delta_cat"), check_base_model=check_base_model)
    composer = get_composer(adapters[0].pem_type) if adapters else None
    device = compute_device()
    labels = list(names) if names else [f"input {i}" for i in range(len(adapters))]
    signs = [1.0 if w is None or w >= 0 else -1.0 for w in (weights or [None] * len(adapters))]
    norms = [
        {p: math.sqrt(max(composer.inner(m, m, device), 0.0)) for p, m in a.modules.items()} for a in adapters
    ]
    report = InterferenceReport(threshold=threshold)
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
            )
            report.pairs.append(pair)
            if pair.rms_cosine > threshold:
                report.warnings.append(
                    f"{labels[i]} and {labels[j]} interfere: RMS cosine {pair.rms_cosine:.3f} > {threshold}"
                )
    return report
