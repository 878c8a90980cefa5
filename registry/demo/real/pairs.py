"""Pair verdicts on retention, and which diagnostic predicts interference.

For a pair of LoRAs x (domain d_x) and y (domain d_y), a method's **retention** is its perplexity on
d_x relative to x's own, and on d_y relative to y's own: paired per document, t intervals
(stats.ratio). A pair verdict rests on these two numbers, never on a mean over domains (a mean is
dominated by the high-perplexity domains). The methods of a pair: the scaled sums c (x + y) and the
decoding-time compositions of the sweep (sweep.py), and `core_merge` where the product registered it.

**Interference** of a pair is the exact sum's (c = 1) retention on both own domains: the mean over
the two domains' documents of log ppl_sum - log ppl_parent, in % (positive: the sum loses). It is
correlated with three diagnostics from the product's interference report of the parents: RMS cosine,
subspace overlap and core overlap (stats.correlate: Pearson and Spearman, adapter bootstrap, Mantel).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import plan
from .stats import Correlation, Estimate, correlate, log_differences, ratio

DIAGNOSTICS = ("rms_cosine", "subspace_overlap", "core_overlap")


@dataclass(frozen=True)
class Method:
    label: str  # "scaled sum c=0.5", "decoding 1/1", "core_merge", "ties (tuned)"
    docs: dict[str, list[float]]
    # a variant at its scale chosen on validation (sweep.Tuning): the scale, and each candidate's
    # pooled validation perplexity; None for the fixed-scale controls
    scale: float | None = None
    val: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class Pair:
    a: str  # adapter refs
    b: str
    domains: tuple[str, str]
    parents: tuple[dict[str, list[float]], dict[str, list[float]]]
    methods: list[Method]

    @property
    def name(self) -> str:
        return f"{short(self.a)}+{short(self.b)}"

    def method(self, label: str) -> Method | None:
        return next((m for m in self.methods if m.label == label), None)

    def retention(self, m: Method, level: float = 0.95) -> tuple[Estimate, Estimate]:
        """(method vs a on a's domain, method vs b on b's domain)."""
        da, db = self.domains
        return (
            ratio([da], m.docs, self.parents[0], level),
            ratio([db], m.docs, self.parents[1], level),
        )

    def loss_diffs(self, m: Method) -> list[float]:
        """Per document of both own domains: log ppl_method - log ppl_parent (the retention pooled)."""
        da, db = self.domains
        return log_differences([da], m.docs, self.parents[0]) + log_differences([db], m.docs, self.parents[1])


TUNED_SUM = "sum"  # sweep.Control.method of the scaled sum at its validation-chosen c


def control_label(kind: str, weights: Sequence[float], method: str = "") -> str:
    """A sweep control's column (results.json's controls carry kind, weights and, tuned, method)."""
    if kind == "tuned":
        return tuned_label(method)
    return f"scaled sum c={weights[0]:g}" if kind == "scaled" else f"decoding {weights[0]:g}/{weights[1]:g}"


def tuned_label(method: str) -> str:
    """The column of a variant at its validation-chosen scale: "sum (tuned)", "core_merge (tuned)"."""
    return f"{method} (tuned)"


def short(ref: str) -> str:
    return ref.split("/", 1)[-1].rsplit("@", 1)[0]


def build(
    controls: Sequence[dict[str, Any]],
    rows: Sequence[Any],
    domain_of: Any,
) -> list[Pair]:
    """Pairs from the sweep's controls (results.json's `controls`) and the result rows (for the
    parents' values and a registered `core_merge` of the same pair)."""
    by_ref = {r.ref: r for r in rows if r.ref}
    out: dict[tuple[str, str], Pair] = {}
    for c in controls:
        a, b = c["pair"]
        if (a, b) not in out:
            if a not in by_ref or b not in by_ref:
                continue
            domains = plan.pair_domains(domain_of(a), domain_of(b))
            out[(a, b)] = Pair(a, b, domains, (by_ref[a].docs, by_ref[b].docs), [])
        label = control_label(c["kind"], c["weights"], c.get("method", ""))
        if c["kind"] == "tuned":
            val = tuple((float(s), float(v)) for s, v in c["val"])
            out[(a, b)].methods.append(Method(label, c["docs"], float(c["weights"][0]), val))
        else:
            out[(a, b)].methods.append(Method(label, c["docs"]))
    for r in rows:
        if r.kind == "result" and r.status == "succeeded" and r.detail.startswith("core_merge"):
            refs = [ref for ref, _ in r.inputs]
            for key in ((refs[0], refs[-1]), (refs[-1], refs[0])):
                if len(refs) == 2 and key in out:
                    out[key].methods.append(Method("core_merge", r.docs))
    return list(out.values())


def _pct(e: Estimate) -> str:
    return f"{(e.value - 1) * 100:+.1f}% [{(e.lo - 1) * 100:+.1f}, {(e.hi - 1) * 100:+.1f}]"


def _labels(pairs: Sequence[Pair], tuned: bool) -> list[str]:
    """The method columns, in first-seen order: the fixed-scale ones, or those at a chosen scale."""
    labels: list[str] = []
    for p in pairs:
        labels += [m.label for m in p.methods if m.label not in labels and (m.scale is not None) == tuned]
    return labels


def _retention_table(pairs: Sequence[Pair], tuned: bool) -> list[str]:
    labels = _labels(pairs, tuned)
    lines = ["| pair (own domains) | " + " | ".join(labels) + " |", "|" + "---|" * (len(labels) + 1)]
    for p in pairs:
        if tuned and not any(m.scale is not None for m in p.methods):
            continue
        cells = []
        for label in labels:
            m = p.method(label)
            if m is None:
                cells.append("-")
                continue
            ra, rb = p.retention(m)
            chosen = f"s={m.scale:g}: " if m.scale is not None else ""
            cells.append(f"{chosen}{_pct(ra)} / {_pct(rb)}")
        lines.append(f"| {p.name} ({'/'.join(p.domains)}) | " + " | ".join(cells) + " |")
    return lines


def sweep_table(pairs: Sequence[Pair]) -> list[str]:
    """Per pair and fixed-scale method: retention on each parent's own domain, 95% t intervals."""
    return _retention_table(pairs, tuned=False)


def tuned_table(pairs: Sequence[Pair]) -> list[str]:
    """Per pair and method at its validation-chosen scale: the scale, then retention on each parent's
    own domain (95% t intervals); only the pairs with tuned variants."""
    return _retention_table(pairs, tuned=True)


def vs_tuned_sum(p: Pair, label: str, level: float = 0.95) -> Estimate | None:
    """The tuned variant `label` against the scaled sum at its own validation-chosen c, pooled own
    domains (below 1: the method is better once both are tuned)."""
    m, s = p.method(label), p.method(tuned_label(TUNED_SUM))
    if m is None or s is None:
        return None
    return ratio(list(dict.fromkeys(p.domains)), m.docs, s.docs, level)


def vs_tuned_sum_table(pairs: Sequence[Pair]) -> list[str]:
    """Per pair: each tuned method against the tuned scaled sum, pooled own domains, 95% t interval."""
    labels = [x for x in _labels(pairs, tuned=True) if x != tuned_label(TUNED_SUM)]
    lines = ["| pair, vs sum (tuned) | " + " | ".join(labels) + " |", "|" + "---|" * (len(labels) + 1)]
    for p in pairs:
        if p.method(tuned_label(TUNED_SUM)) is None:
            continue
        cells = []
        for label in labels:
            e = vs_tuned_sum(p, label)
            cells.append("-" if e is None else _pct(e))
        lines.append(f"| {p.name} vs sum (tuned) | " + " | ".join(cells) + " |")
    return lines


def interference(p: Pair) -> float:
    """The exact sum's pooled own-domain loss vs the parents, in % (positive: worse)."""
    m = p.method("scaled sum c=1")
    if m is None:
        return math.nan
    diffs = p.loss_diffs(m)
    return (math.exp(sum(diffs) / len(diffs)) - 1) * 100


@dataclass(frozen=True)
class PredictorFit:
    diagnostic: str
    pearson: Correlation
    spearman: Correlation


def predictors(pairs: Sequence[Pair], diagnostics: Sequence[dict[str, Any]]) -> list[PredictorFit]:
    """Each diagnostic against the interference over the pairs that have both (>= 3 pairs)."""
    found = {(d["a"], d["b"]): d for d in diagnostics}
    points = [
        (p, found[(p.a, p.b)]) for p in pairs if (p.a, p.b) in found and not math.isnan(interference(p))
    ]
    if len(points) < 3:
        return []
    keys = [(p.a, p.b) for p, _ in points]
    ys = [interference(p) for p, _ in points]
    out = []
    for diag in DIAGNOSTICS:
        xs = [float(d.get(diag) or 0.0) for _, d in points]
        out.append(
            PredictorFit(diag, correlate("pearson", keys, xs, ys), correlate("spearman", keys, xs, ys))
        )
    return out


def shrinkage_control(p: Pair, level: float = 0.95) -> Estimate | None:
    """core_merge vs the scaled sum nearest its shrinkage (plan.CORE_CONTROL_SCALE), pooled own domains."""
    core = p.method("core_merge")
    control = p.method(f"scaled sum c={plan.CORE_CONTROL_SCALE:g}")
    if core is None or control is None:
        return None
    return ratio(list(dict.fromkeys(p.domains)), core.docs, control.docs, level)
