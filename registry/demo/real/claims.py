"""The report's checklist: the primary claims (plan.PRIMARY, stated before the run) tested first, at
a Bonferroni-corrected level over their intervals, then the secondary checks at 95%, descriptive.

Every line is derived from per-document values (rows, the sweep's controls) and the diagnostics, so
tests/test_demo_real.py recomputes those from the registered artifacts and gets the same lines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from . import pairs as pairs_mod
from . import plan
from .stats import LEVEL, Estimate, accuracy_difference, rate_difference, ratio

OTHERS_MARGIN = 1 + plan.UNLEARN_GATE_SLACK  # P5: "other domains within +2%" (the interval's upper end)
RETAIN_MARGIN = 1.05  # non-inferiority: "keeps a parent's own-domain perplexity within +5%"


@dataclass
class Claim:
    id: str  # P1.. primary, S.. secondary
    text: str
    holds: bool | None  # None: not tested (too few points)
    estimates: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def line(self) -> str:
        return f"{self.id}: {self.text}"

    def add(self, name: str, e: Estimate) -> Estimate:
        self.estimates[name] = asdict(e)
        return e


def _pct(e: Estimate) -> str:
    return f"{(e.value - 1) * 100:+.1f}% [{(e.lo - 1) * 100:+.1f}, {(e.hi - 1) * 100:+.1f}]"


def _verdict(holds: bool | None) -> str:
    return "holds" if holds else "not tested" if holds is None else "does NOT hold"


def domain_of(ref: str) -> str:
    return plan.DOMAIN_OF[ref.split("/", 1)[1].split("@")[0]]


def _points(e: Estimate) -> str:
    return f"{e.value * 100:+.1f} points [{e.lo * 100:+.1f}, {e.hi * 100:+.1f}]"


def _adapter(result: Any, name: str) -> Any | None:
    """The row of the trained adapter `name` (plan.AdapterPlan.name)."""
    prefix = plan.ref(name) + "@"
    return next((r for r in result.rows if r.kind == "adapter" and (r.ref or "").startswith(prefix)), None)


def _row(result: Any, test: Callable[[Any], bool]) -> Any | None:
    return next((r for r in result.rows if r.kind == "result" and r.status == "succeeded" and test(r)), None)


def _first_seed(ref: str, rows: Any) -> Any | None:
    """The row of the seed-0 adapter `ref` is a second seed of (plan.AdapterPlan.seed), if any."""
    name = ref.split("/", 1)[1].split("@")[0]
    a = next((a for a in plan.ADAPTERS if a.name == name), None)
    if a is None or a.seed == 0:
        return None
    twin = next(t for t in plan.ADAPTERS if (t.train_set, t.kind, t.seed) == (a.train_set, a.kind, 0))
    return next(
        (r for r in rows if r.kind == "adapter" and r.ref and r.ref.startswith(plan.ref(twin.name) + "@")),
        None,
    )


def primary(result: Any, pairs: list[pairs_mod.Pair]) -> list[Claim]:
    """plan.PRIMARY in order; each at level 1 - 0.05 / (intervals of all primary claims)."""
    k = plan.PRIMARY_INTERVALS
    level = 1 - (1 - LEVEL) / k
    by_ref = {r.ref: r for r in result.rows if r.ref}
    out: list[Claim] = []
    statements = dict(plan.PRIMARY)

    # P1 distribution generalization
    c = Claim("P1", statements["P1"], None)
    merged = _row(result, lambda r: r.scenario == "distribution generalization")
    if merged is not None and all(ref in by_ref for ref, _ in merged.inputs):
        es = [
            c.add(f"vs {ref}", ratio(["code"], merged.docs, by_ref[ref].docs, level))
            for ref, _ in merged.inputs
        ]
        c.holds = all(e.below(1) for e in es)
        c.text += f" | code vs each half {', '.join(_pct(e) for e in es)}: {_verdict(c.holds)}"
    out.append(c)

    main = next((p for p in pairs if (pairs_mod.short(p.a), pairs_mod.short(p.b)) == plan.MAIN_PAIR), None)
    # P2 retention of the exact sum (non-inferiority)
    c = Claim("P2", statements["P2"], None)
    exact = main.method("scaled sum c=1") if main else None
    if main is not None and exact is not None:
        ra, rb = (
            c.add(f"vs {ref} on {d}", e)
            for ref, d, e in zip((main.a, main.b), main.domains, main.retention(exact, level), strict=True)
        )
        c.holds = ra.hi < RETAIN_MARGIN and rb.hi < RETAIN_MARGIN
        c.text += f" | {main.domains[0]} {_pct(ra)}, {main.domains[1]} {_pct(rb)}: {_verdict(c.holds)}"
    out.append(c)

    # P3 core_merge vs the scaled sum, each at its validation-chosen scale
    c = Claim("P3", statements["P3"], None)
    core = pairs_mod.tuned_label("core_merge")
    e = pairs_mod.vs_tuned_sum(main, core, level) if main else None
    if main is not None and e is not None:
        s_core = main.method(core)
        s_sum = main.method(pairs_mod.tuned_label(pairs_mod.TUNED_SUM))
        c.add("core_merge vs scaled sum, both tuned", e)
        c.holds = e.below(1)
        scales = f"s = {s_core.scale:g}, c = {s_sum.scale:g}" if s_core and s_sum else ""
        c.text += f" | {scales}: {_pct(e)}: {_verdict(c.holds)}"
    out.append(c)

    # P4 decoding time vs weight space at 0.5/0.5
    c = Claim("P4", statements["P4"], None)
    dec = main.method("decoding 0.5/0.5") if main else None
    half = main.method("scaled sum c=0.5") if main else None
    if main is not None and dec is not None and half is not None:
        e = c.add(
            "decoding vs weight space", ratio(list(dict.fromkeys(main.domains)), dec.docs, half.docs, level)
        )
        c.holds = e.below(1)
        c.text += f" | decoding time vs weight space {_pct(e)}: {_verdict(c.holds)}"
    out.append(c)

    # P5 unlearning
    c = Claim("P5", statements["P5"], None)
    forget = _row(result, lambda r: r.scenario == "unlearning")
    if forget is not None:
        d = domain_of(forget.inputs[0][0])
        up = c.add(d, ratio([d], forget.docs, result.rows[0].docs, level))
        others = {
            k: c.add(k, ratio([k], forget.docs, result.rows[0].docs, level))
            for k in result.rows[0].docs
            if k != d
        }
        c.holds = up.above(1) and all(v.hi <= OTHERS_MARGIN for v in others.values())
        c.text += (
            f" | lambda {-forget.inputs[0][1]:g}: {d} {_pct(up)}; "
            + ", ".join(f"{k} {_pct(v)}" for k, v in others.items())
            + f": {_verdict(c.holds)}"
        )
        # selectivity: the rise on the unlearned domain against the largest rise elsewhere
        worst = max(others.values(), key=lambda v: v.value)
        c.text += f" (selectivity: {d} {_pct(up)} vs at most {_pct(worst)} elsewhere)"
    elif any(r.scenario == "unlearning" for r in result.rows):
        c.text += " | every lambda was rejected by the validation gate: nothing registered, not tested"
    out.append(c)

    # P6 RMS cosine predicts interference
    c = Claim("P6", statements["P6"], None)
    fits = {f.diagnostic: f for f in pairs_mod.predictors(pairs, result.diagnostics)}
    fit = fits.get("rms_cosine")
    if fit is not None and fit.pearson.adapters >= plan.MIN_CORRELATION_ADAPTERS:
        c.estimates["pearson"] = asdict(fit.pearson)
        c.holds = fit.pearson.r > 0 and fit.pearson.p < (1 - LEVEL) / k
        c.text += f" | Pearson r = {fit.pearson.r:+.2f}, Mantel p = {fit.pearson.p:.3f}: {_verdict(c.holds)}"
    elif fit is not None:
        c.text += f" | only {fit.pearson.adapters} adapters ({fit.pearson.pairs} pairs): not tested"
    else:
        c.text += f" | {len(pairs)} pair(s) swept, fewer than 3: not tested"
    out.append(c)

    # P7 multi-task: the merge keeps each task's accuracy (non-inferiority vs the task's own LoRA)
    c = Claim("P7", statements["P7"], None)
    merged = _row(result, lambda r: r.scenario == "multi-task")
    own = [_adapter(result, t) for t in plan.MULTITASK]
    if merged is not None and all(
        o is not None and t in o.items for o, t in zip(own, plan.MULTITASK, strict=True)
    ):
        es = [
            c.add(f"{t} vs {o.label}", accuracy_difference(merged.items[t], o.items[t], level))
            for t, o in zip(plan.MULTITASK, own, strict=True)
            if o is not None
        ]
        c.holds = all(e.lo > -plan.TASK_MARGIN for e in es)
        c.text += (
            " | "
            + ", ".join(f"{t} {_points(e)}" for t, e in zip(plan.MULTITASK, es, strict=True))
            + f": {_verdict(c.holds)}"
        )
        # The second seeds' merge, at the same level, beside it: the verdict rests on the first seed
        # (stated before the run); this says whether another batch order agrees.
        merged2 = _row(result, lambda r: r.scenario == plan.SEED2)
        own2 = [_adapter(result, n) for n in plan.MULTITASK_S2]
        if merged2 is not None and all(
            o is not None and t in o.items for o, t in zip(own2, plan.MULTITASK, strict=True)
        ):
            es2 = [
                c.add(f"{t} vs {o.label}", accuracy_difference(merged2.items[t], o.items[t], level))
                for t, o in zip(plan.MULTITASK, own2, strict=True)
                if o is not None
            ]
            agrees = all(e.lo > -plan.TASK_MARGIN for e in es2) == c.holds
            c.text += (
                " (seed 1; seed 2: "
                + ", ".join(f"{t} {_points(e)}" for t, e in zip(plan.MULTITASK, es2, strict=True))
                + f", {'agrees' if agrees else 'DISAGREES'})"
            )
    out.append(c)

    # P8 domain transfer: task + c (LM_target - LM_source) vs the task adapter alone, on target items
    c = Claim("P8", statements["P8"], None)
    moved = _row(result, lambda r: r.scenario == "domain transfer")
    task = _adapter(result, plan.TRANSFER)
    key = plan.transfer_key(plan.TRANSFER_TARGET)
    if moved is not None and task is not None and key in moved.items and key in task.items:
        e = c.add(f"{key} vs {task.label}", accuracy_difference(moved.items[key], task.items[key], level))
        chosen = next((w for ref, w in moved.inputs if ref.split("@")[0] == plan.ref("domain-vector")), 0.0)
        c.holds = e.lo > 0
        # the gap there was to close: the task adapter alone on the source's items vs the target's
        home = plan.transfer_key(plan.TRANSFER_SOURCE)
        gap = (
            f" (at c = 0: {home} {sum(task.items[home]) / len(task.items[home]) * 100:.0f}%, "
            f"{key} {sum(task.items[key]) / len(task.items[key]) * 100:.0f}%)"
            if home in task.items
            else ""
        )
        c.text += f" | c = {chosen:g}: {key} {_points(e)}{gap}: {_verdict(c.holds)}"
    out.append(c)
    return out


def secondary(result: Any, pairs: list[pairs_mod.Pair]) -> list[Claim]:
    out: list[Claim] = []
    base = result.rows[0]
    n = 0

    def next_id() -> str:
        nonlocal n
        n += 1
        return f"S{n}"

    for row in result.rows:
        if row.kind == "adapter" and row.items and not row.docs:
            for t in row.items:
                c = Claim(next_id(), f"{row.label} on {t} vs the base", None)
                e = c.add(t, accuracy_difference(row.items[t], base.items[t]))
                c.holds = e.lo > 0
                c.text += f" | {_points(e)}: {'raises it' if c.holds else 'does NOT raise it beyond noise'}"
                out.append(c)
            twin = _first_seed(row.ref, result.rows)
            for t in row.items:  # a second seed: the seed-to-seed spread of the task's accuracy
                if twin is None or t not in twin.items:
                    continue
                c = Claim(next_id(), f"{row.label} vs {twin.label} (another batch order) on {t}", None)
                e = c.add(t, accuracy_difference(row.items[t], twin.items[t]))
                c.holds = e.lo <= 0 <= e.hi
                c.text += f" | {_points(e)}: {'within noise' if c.holds else 'differs beyond noise'}"
                out.append(c)
        elif row.kind == "adapter":
            d = domain_of(row.ref)
            # `generic` was trained on every domain: its own domain is all four, pooled
            ds = list(row.docs) if d == plan.GENERIC else [d]
            d = "all domains" if d == plan.GENERIC else d
            c = Claim(next_id(), f"{row.label} on its own domain {d} vs the base", None)
            e = c.add(d, ratio(ds, row.docs, base.docs))
            c.holds = e.below(1)
            c.text += f" | {_pct(e)}: {'lowers it' if c.holds else 'does NOT lower it beyond noise'}"
            out.append(c)
            twin = _first_seed(row.ref, result.rows)
            if twin is not None:  # the seed-to-seed spread every difference between adapters carries
                c = Claim(next_id(), f"{row.label} vs {twin.label} (another batch order) on {d}", None)
                e = c.add(d, ratio([d], row.docs, twin.docs))
                c.holds = e.lo <= 1 <= e.hi
                c.text += f" | {_pct(e)}: {'within noise' if c.holds else 'differs beyond noise'}"
                out.append(c)
        elif row.kind == "result" and row.scenario == "distribution generalization" and row.docs:
            union = _adapter(result, plan.UNION)
            if union is not None and "code" in union.docs:
                c = Claim(
                    next_id(), f"{row.label} vs the union reference {union.label} on the code mixture", None
                )
                e = c.add("code", ratio(["code"], row.docs, union.docs))
                c.holds = e.hi < RETAIN_MARGIN
                c.text += f" | {_pct(e)} (within +5%: {_verdict(c.holds)})"
                out.append(c)
        elif row.kind == "result" and row.items and row.scenario.startswith("multi-task"):
            c = Claim(next_id(), f"{row.scenario} ({row.label}, {row.detail}) vs each task's own LoRA", None)
            names = plan.MULTITASK_S2 if row.scenario == plan.SEED2 else plan.MULTITASK
            mine = {plan.TASK_OF.get(n, n): _adapter(result, n) for n in names}
            es = {
                t: c.add(t, accuracy_difference(row.items[t], o.items[t]))
                for t, o in mine.items()
                if o is not None and t in o.items and t in row.items
            }
            c.holds = bool(es) and all(e.lo > -plan.TASK_MARGIN for e in es.values())
            c.text += " | " + ", ".join(f"{t} {_points(e)}" for t, e in es.items())
            c.text += f" (each within {plan.TASK_MARGIN * 100:g} points: {_verdict(c.holds)})"
            out.append(c)
        elif row.kind == "result" and row.status == "rejected":
            out.append(
                Claim(next_id(), f"{row.scenario} ({row.label}): rejected by its gate ({row.detail})", None)
            )
        elif row.kind == "result" and row.scenario in ("multi-tasking", "(IA)3 merge", "analogy"):
            c = Claim(next_id(), f"{row.scenario} ({row.label}, {row.detail}) vs the base", None)
            es = {d: c.add(d, ratio([d], row.docs, base.docs)) for d in row.docs}
            c.text += " | " + ", ".join(f"{d} {_pct(e)}" for d, e in es.items())
            if row.scenario != "analogy":
                by_ref = {r.ref: r for r in result.rows if r.ref}
                own = [
                    c.add(
                        f"own {domain_of(ref)} vs {ref}", ratio([domain_of(ref)], row.docs, by_ref[ref].docs)
                    )
                    for ref, _ in row.inputs
                    if ref in by_ref
                ]
                c.holds = all(e.hi < RETAIN_MARGIN for e in own)
                c.text += "; own domain vs its parent " + ", ".join(_pct(e) for e in own)
                c.text += f" (each within +5%: {_verdict(c.holds)})"
            out.append(c)
    for p in pairs:
        c = Claim(next_id(), f"pair {p.name}: retention on {p.domains[0]} / {p.domains[1]} per method", None)
        parts = []
        for m in p.methods:
            ra, rb = p.retention(m)
            c.add(f"{m.label} vs {pairs_mod.short(p.a)}", ra)
            c.add(f"{m.label} vs {pairs_mod.short(p.b)}", rb)
            parts.append(f"{m.label} {_pct(ra)} / {_pct(rb)}")
        sc = pairs_mod.shrinkage_control(p)
        if sc is not None:
            c.add("core_merge vs control", sc)
            parts.append(f"core_merge vs scaled sum c={plan.CORE_CONTROL_SCALE:g} {_pct(sc)}")
        for m in p.methods:
            vs = pairs_mod.vs_tuned_sum(p, m.label) if m.scale is not None else None
            if vs is not None and m.label != pairs_mod.tuned_label(pairs_mod.TUNED_SUM):
                c.add(f"{m.label} vs sum (tuned)", vs)
                parts.append(f"{m.label} vs sum (tuned) {_pct(vs)}")
        c.text += " | " + "; ".join(parts)
        out.append(c)
    fits = pairs_mod.predictors(pairs, result.diagnostics)
    for f in fits:
        c = Claim(
            next_id(),
            f"{f.diagnostic} vs interference over {f.pearson.pairs} pairs of {f.pearson.adapters} adapters",
            None,
        )
        c.estimates = {"pearson": asdict(f.pearson), "spearman": asdict(f.spearman)}
        c.holds = f.pearson.p < 1 - LEVEL and f.pearson.r > 0
        c.text += " | " + "; ".join(
            f"{x.kind} {x.r:+.2f} [{x.lo:+.2f}, {x.hi:+.2f}] Mantel p {x.p:.3f} "
            f"({x.permutations} relabellings)"
            for x in (f.pearson, f.spearman)
        )
        c.text += f": {'predicts it' if c.holds else 'does NOT predict it beyond noise'}"
        out.append(c)
    for decoding in ("greedy", "sampled"):
        rows = [r for r in result.style if r["decoding"] == decoding]  # base, the LoRA, unlearned
        # First: the LoRA raises the behaviour (else there is nothing specific to unlearn); then the
        # unlearned model lowers it below the base's.
        for k, (what, up) in enumerate((("the licence LoRA", True), ("unlearned", False)), 1):
            if len(rows) <= k:
                continue
            c = Claim(
                next_id(), f"licence-boilerplate rate of {decoding} generations, {what} minus base", None
            )
            e = rate_difference([tuple(x) for x in rows[k]["counts"]], [tuple(x) for x in rows[0]["counts"]])
            c.estimates["difference"] = asdict(e)
            c.holds = e.lo > 0 if up else e.hi < 0
            verdict = ("higher" if up else "lower") if c.holds else ("NOT higher" if up else "NOT lower")
            c.text += (
                f" ({len(rows[0]['counts'])} prompts) | {e.value * 100:+.0f} points "
                f"[{e.lo * 100:+.0f}, {e.hi * 100:+.0f}]: {verdict}{'' if c.holds else ' beyond noise'}"
            )
            out.append(c)
    return out


def claims(result: Any) -> list[Claim]:
    pairs = pairs_mod.build(result.controls, result.rows, domain_of)
    return primary(result, pairs) + secondary(result, pairs)
