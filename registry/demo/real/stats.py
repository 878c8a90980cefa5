"""Intervals and correlations for the real-model report. Pure numpy; no model, no I/O.

**Per-document paired differences, Student t intervals.** A row's value on a document is its perplexity
on that document's window; every window has the same number of tokens (within a token or two of
re-tokenisation), so a domain's perplexity is the geometric mean over its documents. A comparison of
two rows is the mean over documents of d_i = log ppl_x,i - log ppl_y,i, with the t interval
mean +- t_{n-1} s / sqrt(n), reported as the ratio exp(.) - 1 in %. Why t and not a bootstrap: with
6-30 documents the percentile bootstrap's interval is too short (it undercovers: about 80-90% at n =
10), and BCa's acceleration is estimated from the same few points; the paired log differences are
close to symmetric, where the t interval is exact under normality and near-nominal by the central
limit theorem at n = 30. Both rows are read on the same documents, so the interval is paired.

**Correlations over pairs of adapters.** The pairs share adapters, so pair-level points are not
independent: a bootstrap over pairs would be too narrow. The interval resamples *adapters* with
replacement and keeps the pairs among the drawn ones (percentile interval); the test is a Mantel
permutation test: relabel the adapters of the diagnostic matrix (all n! permutations when n <= 8)
and count how often |r| is at least the observed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95
ROUNDS = 2000


@dataclass(frozen=True)
class Estimate:
    """A ratio (or a perplexity) with its interval; `n` documents behind it, at confidence `level`."""

    value: float
    lo: float
    hi: float
    n: int = 0
    level: float = LEVEL

    def fmt(self, digits: int = 2) -> str:
        return f"{self.value:.{digits}f} [{self.lo:.{digits}f}, {self.hi:.{digits}f}]"

    def below(self, x: float) -> bool:
        """The whole interval is below x (a decrease that holds)."""
        return self.hi < x

    def above(self, x: float) -> bool:
        return self.lo > x


def t_quantile(p: float, df: int) -> float:
    """The p-quantile (p > 0.5) of Student's t with `df` degrees of freedom: bisection on the CDF, the
    density integrated by Simpson's rule (error < 1e-9 for the levels used here)."""
    c = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)

    def cdf(x: float) -> float:
        t = np.linspace(0.0, x, 4001)
        f = c * (1 + t * t / df) ** (-(df + 1) / 2)
        h = x / 4000
        return 0.5 + float(h / 3 * (f[0] + f[-1] + 4 * f[1:-1:2].sum() + 2 * f[2:-1:2].sum()))

    lo, hi = 0.0, 1.0
    while cdf(hi) < p:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < p else (lo, mid)
    return (lo + hi) / 2


def mean_interval(xs: Sequence[float], level: float = LEVEL) -> tuple[float, float, float]:
    """(mean, lo, hi): the t interval of the mean of `xs`."""
    a = np.asarray(xs, dtype=np.float64)
    m = float(a.mean())
    if len(a) < 2:
        return m, m, m
    half = t_quantile(1 - (1 - level) / 2, len(a) - 1) * float(a.std(ddof=1)) / math.sqrt(len(a))
    return m, m - half, m + half


def ppl(values: Sequence[float], level: float = LEVEL) -> Estimate:
    """A domain's perplexity: the geometric mean over its documents, t interval on the log scale."""
    m, lo, hi = mean_interval(np.log(np.asarray(values, dtype=np.float64)).tolist(), level)
    return Estimate(math.exp(m), math.exp(lo), math.exp(hi), len(values), level)


def log_differences(
    domains: Sequence[str], x: Mapping[str, Sequence[float]], y: Mapping[str, Sequence[float]]
) -> list[float]:
    """Per document of `domains` (pooled): log ppl_x - log ppl_y."""
    return [math.log(a) - math.log(b) for d in domains for a, b in zip(x[d], y[d], strict=True)]


def ratio(
    domains: Sequence[str],
    x: Mapping[str, Sequence[float]],
    y: Mapping[str, Sequence[float]],
    level: float = LEVEL,
) -> Estimate:
    """Paired ratio of row x to row y over the documents of `domains`: exp(mean log difference)."""
    diffs = log_differences(domains, x, y)
    m, lo, hi = mean_interval(diffs, level)
    return Estimate(math.exp(m), math.exp(lo), math.exp(hi), len(diffs), level)


def accuracy(correct: Sequence[float], level: float = LEVEL) -> Estimate:
    """A task's accuracy: the mean of per-item correctness (0 or 1), t interval (near-nominal at 100
    items unless the accuracy is within a few items of 0 or 1)."""
    m, lo, hi = mean_interval(correct, level)
    return Estimate(m, max(lo, 0.0), min(hi, 1.0), len(correct), level)


def accuracy_difference(x: Sequence[float], y: Sequence[float], level: float = LEVEL) -> Estimate:
    """Accuracy of x minus accuracy of y, paired over the same items: the t interval of the per-item
    differences (each -1, 0 or 1)."""
    m, lo, hi = mean_interval([a - b for a, b in zip(x, y, strict=True)], level)
    return Estimate(m, lo, hi, len(x), level)


def rate_difference(x: Sequence[tuple[int, int]], y: Sequence[tuple[int, int]]) -> Estimate:
    """(hits/lines of x) - (hits/lines of y), paired over prompts: the t interval of the per-prompt
    differences of rates (a prompt without lines counts 0)."""
    diffs = [hx / max(lx, 1) - hy / max(ly, 1) for (hx, lx), (hy, ly) in zip(x, y, strict=True)]
    m, lo, hi = mean_interval(diffs)
    return Estimate(m, lo, hi, len(diffs))


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float:
    a, b = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    if a.std() == 0 or b.std() == 0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def _ranks(xs: Sequence[float]) -> list[float]:
    """Ranks from 1, ties given their mean rank."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    ranks = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float:
    return pearson(_ranks(xs), _ranks(ys))


CORRELATIONS = {"pearson": pearson, "spearman": spearman}


@dataclass(frozen=True)
class Correlation:
    kind: str  # pearson | spearman
    r: float
    lo: float  # percentile interval over adapters resampled with replacement
    hi: float
    p: float  # Mantel permutation p (two-sided, |r|)
    pairs: int
    adapters: int
    permutations: int


def correlate(
    kind: str, pairs: Sequence[tuple[str, str]], xs: Sequence[float], ys: Sequence[float], seed: int = 0
) -> Correlation:
    """r between a per-pair diagnostic `xs` and a per-pair outcome `ys`, with an adapter bootstrap
    interval and a Mantel p-value (see the module docstring)."""
    fn = CORRELATIONS[kind]
    names = sorted({a for p in pairs for a in p})
    index = {p: k for k, p in enumerate(pairs)} | {(b, a): k for k, (a, b) in enumerate(pairs)}
    r = fn(xs, ys)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(ROUNDS):
        pick = [names[i] for i in rng.integers(0, len(names), len(names))]
        ks = [index[(a, b)] for i, a in enumerate(pick) for b in pick[i + 1 :] if (a, b) in index]
        if len({pairs[k] for k in ks}) >= 3:
            value = fn([xs[k] for k in ks], [ys[k] for k in ks])
            if not math.isnan(value):
                draws.append(value)
    lo, hi = (
        (float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5)))
        if draws
        else (math.nan, math.nan)
    )
    perms: list[Sequence[int]]
    if len(names) <= 8:
        perms = list(itertools.permutations(range(len(names))))
    else:
        perms = [rng.permutation(len(names)).tolist() for _ in range(ROUNDS)]
    pos = {a: i for i, a in enumerate(names)}
    hits = 0
    for perm in perms:
        moved = [xs[index[(names[perm[pos[a]]], names[perm[pos[b]]])]] for a, b in pairs]
        value = fn(moved, ys)
        hits += not math.isnan(value) and abs(value) >= abs(r) - 1e-12
    # all n! relabellings include the identity: exact p; random ones: the observed labelling added
    p = hits / len(perms) if len(names) <= 8 else (hits + 1) / (len(perms) + 1)
    return Correlation(kind, r, lo, hi, p, len(pairs), len(names), len(perms))
