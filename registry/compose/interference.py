"""Interference report: pairwise cosine of the inputs' deltas, RMS over the modules they share.

LoRA inner products come from the factors (r x r Gram products), never from d x k deltas; (IA)3
uses (l - 1). With weights, the cosine of w_i D_i and w_j D_j carries sign(w_i w_j).

For LoRA it also says how far the factor-wise `linear` merge is from the exact weighted delta sum
(compose/cross_terms.py), per pair and for all inputs; (IA)3 `linear` is exact, so 0 there.

One module of every input at a time (`interference_files` reads them from the adapter folders), so
memory is flat in the number and size of the inputs; only n x n inner products are kept per module.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from registry.compose.base import MethodParams, get_composer
from registry.compose.checks import check_adapters
from registry.compose.cross_terms import CrossTermTotals, accumulate, new_totals, overall_error, pair_error
from registry.compose.device import DEFAULT_CPU_THREADS, compute_device, torch_threads
from registry.compose.engine import InMemory, Source
from registry.compose.heap import map_large_blocks
from registry.compose.overlap import PairOverlaps
from registry.pem import PemAdapter
from registry.pem.lazy import open_adapters

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
    # Mean squared cosine of the principal angles between the column spaces of D_i and D_j (1: one
    # subspace, 0: orthogonal), RMS and mean over the shared modules (compose/overlap.py).
    subspace_overlap: float = 0.0
    mean_subspace_overlap: float = 0.0
    # |core_i & core_j| / min(|core_i|, |core_j|) of the top `core_density` fraction of |w D| (the
    # core_merge overlap), RMS and mean over the shared modules; None when not computed.
    core_overlap: float | None = None
    mean_core_overlap: float | None = None


@dataclass
class InterferenceReport:
    threshold: float
    pairs: list[PairInterference] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    linear_cross_term_error: float | None = None  # the same distance with all inputs together
    cross_term_threshold: float = DEFAULT_CROSS_TERM_THRESHOLD
    core_density: float | None = None  # the core fraction the core overlaps used (None: not computed)

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
    threads: int | None = DEFAULT_CPU_THREADS,
    core_density: float | None = None,
) -> InterferenceReport:
    """Pairwise RMS-over-modules cosine; a warning for each pair with rms_cosine > threshold. Beside it
    each pair's subspace overlap and, when `core_density` is given, its core overlap (which forms
    each input's dense delta once per module, one at a time: the cost of a dense method's pass).

    When `method` is `linear`, a LoRA composition whose linear cross-term error (all inputs) exceeds
    `cross_term_threshold` also gets a warning suggesting delta_cat / delta_svd.

    `threads`: torch intra-op threads during the call, as for `compose` (compose/device.py): the report
    is many r x r Gram products, which a second thread on a shared core made 100x slower (measured:
    0.11 s with 1 thread, 19 s with 2 beside a busy core, 4 rank-16 inputs of 8 Llama layers).
    """
    with torch_threads(threads):
        sources = [InMemory(a) for a in adapters]
        return _report(
            sources, weights, threshold, names, check_base_model, method, cross_term_threshold, core_density
        )


def interference_files(
    folders: Sequence[str | os.PathLike[str]],
    weights: Sequence[float] | None = None,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    names: Sequence[str] | None = None,
    check_base_model: bool = True,
    method: str | None = None,
    cross_term_threshold: float = DEFAULT_CROSS_TERM_THRESHOLD,
    threads: int | None = DEFAULT_CPU_THREADS,
    core_density: float | None = None,
) -> InterferenceReport:
    """`interference_report` of adapter folders, read one module at a time (as `compose_files`)."""
    with torch_threads(threads), open_adapters(list(folders)) as lazies:
        return _report(
            lazies, weights, threshold, names, check_base_model, method, cross_term_threshold, core_density
        )


def _report(
    sources: Sequence[Source],
    weights: Sequence[float] | None,
    threshold: float,
    names: Sequence[str] | None,
    check_base_model: bool,
    method: str | None,
    cross_term_threshold: float,
    core_density: float | None = None,
) -> InterferenceReport:
    if not sources:
        return InterferenceReport(
            threshold=threshold, cross_term_threshold=cross_term_threshold, core_density=core_density
        )
    skeletons = [s.skeleton for s in sources]
    check_adapters(skeletons, MethodParams("delta_cat"), check_base_model=check_base_model)
    map_large_blocks()  # the core overlap forms dense deltas: freed ones return to the OS (heap.py)
    measured = InterferenceMeter(weights, core_density)
    measured.read(sources)
    return measured.report(threshold, names, method, cross_term_threshold)


class InterferenceMeter:
    """The report's measurements, fed one module path of every input at a time (None where an input
    lacks the module): by `interference_files`' own pass, or as an observer of the composition loop
    (engine.run), so a run that composes reads each input once for both."""

    def __init__(self, weights: Sequence[float] | None, core_density: float | None = None) -> None:
        self.given_weights = list(weights) if weights is not None else None
        self.core_density = core_density
        self.overlaps = PairOverlaps(core_density)
        self.inners: dict[str, torch.Tensor] = {}
        self.linear_runs = True
        self.skeletons: list[PemAdapter] = []

    def start(self, skeletons: Sequence[PemAdapter]) -> None:
        """Called once, before the first module, with the inputs' skeletons (shapes and configs)."""
        self.skeletons = list(skeletons)
        self.weights = self.given_weights or [1.0] * len(skeletons)
        self.composer = get_composer(skeletons[0].pem_type)
        self.device = compute_device()
        # (IA)3's linear is the exact weighted sum: nothing to measure
        self.totals = new_totals(self.weights) if self.composer.cross_terms else None

    def read(self, sources: Sequence[Source]) -> None:
        """The report's own pass over the inputs, one module path of every input at a time."""
        self.start([s.skeleton for s in sources])
        for path in sorted({p for s in sources for p in s.skeleton.modules}):
            self.observe(path, [s.module(path) if path in s.skeleton.modules else None for s in sources])

    def observe(self, path: str, modules: Sequence[Any | None]) -> None:
        """One module path: the n x n delta inner products (from the cross-term Gram blocks for LoRA
        of one rank; pairwise otherwise; where ranks differ anywhere, linear cannot run: no cross-term
        totals) and both overlaps."""
        n = len(modules)
        found = (
            accumulate(self.totals, modules, self.device)
            if self.totals is not None and self.linear_runs
            else None
        )
        if found is None:
            self.linear_runs = self.linear_runs and not self.composer.cross_terms
            found = torch.zeros(n, n, dtype=torch.float64)
            for i, a in enumerate(modules):
                for j in range(i, n):
                    b = modules[j]
                    if a is not None and b is not None:
                        found[i, j] = found[j, i] = self.composer.inner(a, b, self.device)
        self.inners[path] = found
        self.overlaps.add(modules, self.weights, self.device)

    def report(
        self,
        threshold: float = DEFAULT_THRESHOLD,
        names: Sequence[str] | None = None,
        method: str | None = None,
        cross_term_threshold: float = DEFAULT_CROSS_TERM_THRESHOLD,
    ) -> InterferenceReport:
        report = InterferenceReport(
            threshold=threshold, cross_term_threshold=cross_term_threshold, core_density=self.core_density
        )
        skeletons, inners = self.skeletons, self.inners
        cross = self.totals if self.composer.cross_terms and self.linear_runs else None
        labels = list(names) if names else [f"input {i}" for i in range(len(skeletons))]
        signs = [1.0 if w >= 0 else -1.0 for w in self.weights]
        norms = [
            {p: math.sqrt(max(float(inners[p][i, i]), 0.0)) for p in a.modules}
            for i, a in enumerate(skeletons)
        ]
        for i in range(len(skeletons)):
            for j in range(i + 1, len(skeletons)):
                cosines = []
                for path in sorted(skeletons[i].modules.keys() & skeletons[j].modules.keys()):
                    denom = norms[i][path] * norms[j][path]
                    if denom > 0:
                        cosines.append(signs[i] * signs[j] * float(inners[path][i, j]) / denom)
                n = len(cosines)
                pair = PairInterference(
                    i=i,
                    j=j,
                    rms_cosine=math.sqrt(sum(c * c for c in cosines) / n) if n else 0.0,
                    mean_cosine=sum(cosines) / n if n else 0.0,
                    max_abs_cosine=max((abs(c) for c in cosines), default=0.0),
                    modules=n,
                    linear_cross_term_error=_linear_error(cross, self.linear_runs, len(report.pairs)),
                )
                pair.subspace_overlap, pair.mean_subspace_overlap = self.overlaps.subspace_of(i, j)
                pair.core_overlap, pair.mean_core_overlap = self.overlaps.core_of(i, j)
                report.pairs.append(pair)
                if pair.rms_cosine > threshold:
                    report.warnings.append(
                        f"{labels[i]} and {labels[j]} interfere: RMS cosine {pair.rms_cosine:.3f} > "
                        f"{threshold}"
                    )
        report.linear_cross_term_error = _linear_error(cross, self.linear_runs, None)
        error = report.linear_cross_term_error
        if method == "linear" and error is not None and error > cross_term_threshold:
            report.warnings.append(
                f"linear is {error:.0%} away from the exact weighted delta sum (> {cross_term_threshold:g}; "
                "cross terms B_i A_j: the inputs probably do not share an initialisation); "
                "use delta_cat (exact sum) or delta_svd (best rank-k)"
            )
        return report


def _linear_error(cross: CrossTermTotals | None, linear_runs: bool, pair: int | None) -> float | None:
    """Pair number `pair` (or all inputs when None); 0.0 for (IA)3, None where linear cannot run."""
    if cross is None:
        return 0.0 if linear_runs else None
    return overall_error(cross) if pair is None else pair_error(cross, pair)
