"""Bootstrap over held-out documents: perplexity with a 95% interval, and paired ratios between rows.

A row's perplexity on a domain is exp(sum_d nll_d / sum_d n_d) over that domain's test documents d
(nll_d = n_d * log ppl_d, n_d the scored tokens of document d). One fixed set of resamples of the
documents is shared by every row, so a ratio between two rows is a *paired* bootstrap: both rows
are read on the same resampled documents. Pure numpy; no model, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

ROUNDS = 2000
LEVEL = 0.95


@dataclass(frozen=True)
class Estimate:
    value: float
    lo: float
    hi: float

    def fmt(self, digits: int = 2) -> str:
        return f"{self.value:.{digits}f} [{self.lo:.{digits}f}, {self.hi:.{digits}f}]"

    def below(self, x: float) -> bool:
        """The whole interval is below x (a decrease that holds)."""
        return self.hi < x

    def above(self, x: float) -> bool:
        return self.lo > x


class Resampler:
    def __init__(self, tokens: Mapping[str, Sequence[int]], rounds: int = ROUNDS, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.tokens = {d: np.asarray(n, dtype=np.float64) for d, n in tokens.items()}
        self.idx = {d: rng.integers(0, len(n), size=(rounds, len(n))) for d, n in self.tokens.items()}

    def nll(self, domain: str, ppl: Sequence[float]) -> np.ndarray:
        """Per-document total negative log-likelihood from per-document perplexities."""
        return self.tokens[domain] * np.log(np.asarray(ppl, dtype=np.float64))

    def point(self, domain: str, ppl: Sequence[float]) -> float:
        return math.exp(float(self.nll(domain, ppl).sum() / self.tokens[domain].sum()))

    def draws(self, domain: str, ppl: Sequence[float]) -> np.ndarray:
        """log perplexity of the domain on each resample (shape: rounds)."""
        idx = self.idx[domain]
        return self.nll(domain, ppl)[idx].sum(axis=1) / self.tokens[domain][idx].sum(axis=1)

    def ppl(self, domain: str, ppl: Sequence[float]) -> Estimate:
        return _estimate(self.point(domain, ppl), np.exp(self.draws(domain, ppl)))

    def ratio(
        self, domains: Sequence[str], x: Mapping[str, Sequence[float]], y: Mapping[str, Sequence[float]]
    ) -> Estimate:
        """Ratio of the mean perplexity over `domains` of row x to row y, paired."""
        px = sum(self.point(d, x[d]) for d in domains) / len(domains)
        py = sum(self.point(d, y[d]) for d in domains) / len(domains)
        dx = sum(np.exp(self.draws(d, x[d])) for d in domains) / len(domains)
        dy = sum(np.exp(self.draws(d, y[d])) for d in domains) / len(domains)
        return _estimate(px / py, dx / dy)


def _estimate(value: float, draws: np.ndarray) -> Estimate:
    tail = (1 - LEVEL) / 2 * 100
    lo, hi = np.percentile(draws, [tail, 100 - tail])
    return Estimate(value, float(lo), float(hi))


def rate_difference(x: Sequence[tuple[int, int]], y: Sequence[tuple[int, int]], seed: int = 0) -> Estimate:
    """Paired bootstrap over prompts of (hits/lines of x) - (hits/lines of y); items are (hits, lines)."""
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(ROUNDS, len(a)))

    def rate(m: np.ndarray) -> np.ndarray:
        return m[..., 0].sum(axis=-1) / np.maximum(m[..., 1].sum(axis=-1), 1)

    return _estimate(float(rate(a) - rate(b)), rate(a[idx]) - rate(b[idx]))


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float:
    return float(np.corrcoef(np.asarray(xs), np.asarray(ys))[0, 1])


def permutation_p(xs: Sequence[float], ys: Sequence[float], rounds: int = 5000, seed: int = 0) -> float:
    """Two-sided p-value of Pearson's r against shuffled pairings (exact enough for n >= 6)."""
    rng = np.random.default_rng(seed)
    r = abs(pearson(xs, ys))
    y = np.asarray(ys)
    hits = sum(abs(pearson(xs, list(rng.permutation(y)))) >= r - 1e-12 for _ in range(rounds))
    return (hits + 1) / (rounds + 1)
