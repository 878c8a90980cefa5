"""The real-model demo's table (perplexity with 95% bootstrap intervals over held-out documents), its
checklist (every claimed effect checked against a paired interval; what does not hold says so), the
interference analysis, the style rate of generations, lineage tree, markdown, PNG plots, results.json.

Numbers come from real evaluations only: the base through `Evaluator`, parents from the catalog's
evaluations table, results from their composition's metrics (one perplexity per held-out document);
`claims()` derives the checklist from those per-document values and nothing else, so a test can
recompute the per-document values from the registered artifacts and get the same lines.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from registry.service.catalog.evaluations import cached_value

from ... import service
from ...evaluation import load_dataset
from ..report import _lineage_lines, _weights
from . import plan
from .stats import Estimate, Resampler, pearson, permutation_p, rate_difference

GATE_OTHERS = 1.05  # "other domains within 5%" (upper end of the paired interval)


@dataclass
class RealRow:
    label: str
    ref: str | None  # ns/name@N; None for the base
    kind: str  # base | adapter | result
    scenario: str = ""
    detail: str = ""
    docs: dict[str, list[float]] = field(default_factory=dict)  # domain -> perplexity per test document
    status: str = "succeeded"
    inputs: list[tuple[str, float]] = field(default_factory=list)
    decoding_of: str = ""  # kind "decoding": the weight-space result whose weighted inputs it combines


@dataclass
class RealResult:
    out_dir: Path
    base_ref: str
    base_folder: Path
    doc_names: dict[str, list[str]]  # domain -> evaluation names, in order
    tokens: dict[str, list[int]]  # domain -> scored tokens per document, same order
    rows: list[RealRow]
    interference: list[dict[str, Any]]
    style: list[dict[str, Any]]
    lineage_root: str
    seconds: float
    threads: int = 1
    precision: str = "fp32"
    quick: bool = False
    search: list[dict[str, Any]] = field(default_factory=list)
    sizes: dict[str, Any] = field(default_factory=dict)  # the corpora after hygiene (runner._prepare)

    @property
    def report_path(self) -> Path:
        return self.out_dir / "report.md"

    @property
    def plot_path(self) -> Path:
        return self.out_dir / "demo-real.png"

    @property
    def json_path(self) -> Path:
        return self.out_dir / "results.json"


def domain_of(ref: str) -> str:
    return plan.DOMAIN_OF[ref.split("/", 1)[1].split("@")[0]]


def collect(
    reg: service.Registry,
    base_ref: str,
    base_folder: Path,
    base_metrics: dict[str, float],
    held_out: list[Any],
    views: list[tuple[str, Any, Any]],
    style_rows: list[dict[str, Any]],
    out_dir: Path,
    seconds: float,
    *,
    threads: int,
    precision: str,
    quick: bool,
    sizes: dict[str, Any],
) -> RealResult:
    names: dict[str, list[str]] = {}
    tokens: dict[str, list[int]] = {}
    for h in held_out:
        names.setdefault(h.domain, []).append(h.name)
        tokens.setdefault(h.domain, []).append(h.tokens)
    digests = {h.name: load_dataset(str(h.path), "perplexity", None).sha256 for h in held_out}

    def per_doc(values: dict[str, float]) -> dict[str, list[float]]:
        return {d: [float(values[n]) for n in ns] for d, ns in names.items()}

    rows = [
        RealRow(
            label=f"base {base_ref}", ref=None, kind="base", detail="no adapter", docs=per_doc(base_metrics)
        )
    ]
    parents: dict[str, RealRow] = {}
    results: list[RealRow] = []
    interference: list[dict[str, Any]] = []
    search: list[dict[str, Any]] = []
    lineage_root = ""
    for scenario, spec, view in views:
        for item in view.inputs:
            label = f"{item.name}@{item.version}"
            if label not in parents:
                found = {n: cached_value(reg, label, "perplexity", digests[n]) for n in digests}
                values = {n: v for n, v in found.items() if v is not None}
                if len(values) == len(found):
                    parents[label] = RealRow(
                        label=label,
                        ref=label,
                        kind="adapter",
                        detail="trained",
                        docs=per_doc(values),
                    )
        weights = _weights(view)
        terms = " ".join(f"{w:+g}*{n.split('/')[1].rsplit('@', 1)[0]}" for n, w in weights)
        detail = f"{view.method}: {terms}"
        if view.output is None and spec.search is not None:  # rejected: no lineage; say what was searched
            grid = ", ".join(f"{w:g}" for ws in spec.search.weights.values() for w in ws)
            detail = (
                f"{view.method}: weight in [{grid}] on {', '.join(spec.search.weights)}, none passed the gate"
            )
        ref = f"{view.output.name}@{view.output.version}" if view.output else None
        results.append(
            RealRow(
                label=ref or spec.name,
                ref=ref,
                kind="result",
                scenario=scenario,
                detail=detail,
                docs=per_doc(view.metrics),
                status=view.status,
                inputs=weights,
            )
        )
        record = view.interference or {}
        decoding = (record.get("decoding") or {}).get("evaluations")
        if decoding and ref is not None:  # compare_decoding: the same weighted inputs at decoding time
            results.append(
                RealRow(
                    label=f"{ref} at decoding time",
                    ref=None,
                    kind="decoding",
                    scenario=scenario,
                    detail=f"decoding time: {terms}",
                    docs=per_doc({r["evaluation"]: r["decoding_time"] for r in decoding}),
                    inputs=weights,
                    decoding_of=ref,
                )
            )
        labels = record.get("names") or [f"{i.name}@{i.version}" for i in view.inputs]
        overlaps = {(o["i"], o["j"]): o["rms_overlap"] for o in record.get("core_overlap", [])}
        for p in record.get("pairs", []):
            entry = {
                "a": labels[p["i"]],
                "b": labels[p["j"]],
                "rms_cosine": p["rms_cosine"],
                "composition": ref or spec.name,
            }
            if (p["i"], p["j"]) in overlaps:
                entry["core_overlap"] = overlaps[(p["i"], p["j"])]
            interference.append(entry)
        if scenario == "unlearning":
            lineage_root = ref or lineage_root
            search = _search_record(reg, ref)
    rows += sorted(parents.values(), key=lambda r: r.label) + results
    return RealResult(
        out_dir=out_dir,
        base_ref=base_ref,
        base_folder=base_folder,
        doc_names=names,
        tokens=tokens,
        rows=rows,
        interference=interference,
        style=style_rows,
        lineage_root=lineage_root or next((r.ref for r in results if r.ref), ""),
        seconds=seconds,
        threads=threads,
        precision=precision,
        quick=quick,
        search=search,
        sizes=sizes,
    )


def _search_record(reg: service.Registry, ref: str | None) -> list[dict[str, Any]]:
    """The lambda search's candidates (validation perplexities, gate verdicts) from the provenance."""
    if ref is None:
        return []
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        _, files = service.download_version(reg, ref, Path(tmp))
        prov = next((f for f in files if f.name == "provenance.json"), None)
        if prov is None:
            return []
        record = json.loads(prov.read_text()).get("search") or {}
    from registry.views import SearchCandidate  # the record's one reader (older field names too)

    candidates = [SearchCandidate.model_validate(c) for c in record.get("candidates", [])]
    return [
        {
            "weights": c.weights,
            "val": {k: v for k, v in c.metrics.items() if k.startswith("val-")},
            "passes_gates": c.gates_passed,
        }
        for c in candidates
    ]


def _pct(e: Estimate) -> str:
    return f"{(e.value - 1) * 100:+.1f}% [{(e.lo - 1) * 100:+.1f}, {(e.hi - 1) * 100:+.1f}]"


def _ok(flag: bool, yes: str, no: str) -> str:
    return yes if flag else f"NOT {no}" if no else "does NOT hold"


def _parents(by_ref: dict[str, RealRow], row: RealRow) -> list[RealRow] | None:
    """The rows of `row`'s inputs, or None when one of them is missing from the result."""
    found = [by_ref.get(ref) for ref, _ in row.inputs]
    parents = [p for p in found if p is not None]
    return parents if len(parents) == len(found) else None


def claims(result: Any) -> list[str]:
    """The paper's effects checked on the per-document numbers with paired 95% bootstrap intervals.
    An effect 'holds' only when the whole interval is on the claimed side."""
    rs = Resampler(result.tokens)
    base = result.rows[0]
    by_ref = {r.ref: r for r in result.rows if r.ref}
    out: list[str] = []

    def ratio(x: RealRow, y: RealRow, ds: list[str]) -> Estimate:
        return rs.ratio(ds, x.docs, y.docs)

    for row in result.rows:
        if row.kind == "result" and row.status == "rejected":
            out.append(
                f"{row.scenario} ({row.label}): rejected by its gate, nothing registered ({row.detail})"
            )
        if row.kind != "result" or row.status != "succeeded":
            continue
        parents = _parents(by_ref, row)
        if parents is None:
            continue
        doms = [domain_of(ref) for ref, _ in row.inputs]
        if row.scenario == "distribution generalization":
            vs = [ratio(row, p, ["code"]) for p in parents]
            vb = ratio(row, base, ["code"])
            holds = all(v.below(1) for v in vs)
            out.append(
                f"distribution generalization ({row.label}): code perplexity vs its parents "
                + ", ".join(_pct(v) for v in vs)
                + f", vs the base {_pct(vb)}: "
                + ("beats both parents (holds)" if holds else "does NOT beat both parents beyond noise")
            )
        elif row.scenario in ("multi-tasking", "(IA)3 merge") and len(parents) == 2 and doms[0] != doms[1]:
            vbs = [ratio(row, base, [d]) for d in doms]
            vp = [ratio(row, p, [d]) for p, d in zip(parents, doms, strict=True)]
            vu = [ratio(row, p, doms) for p in parents]
            out.append(
                f"{row.scenario} ({row.label}): vs the base "
                + ", ".join(f"{d} {_pct(v)}" for d, v in zip(doms, vbs, strict=True))
                + (
                    " (beats the base on both: holds)"
                    if all(v.below(1) for v in vbs)
                    else " (does NOT beat the base on both)"
                )
                + "; own domain vs its parent "
                + ", ".join(f"{d} {_pct(v)}" for d, v in zip(doms, vp, strict=True))
                + "; mean of both domains vs each parent "
                + ", ".join(_pct(v) for v in vu)
                + (
                    " (beats both parents: holds)"
                    if all(v.below(1) for v in vu)
                    else " (does NOT beat both parents)"
                )
            )
        elif row.scenario == "unlearning":
            d = doms[0]
            up = ratio(row, base, [d])
            others = {k: ratio(row, base, [k]) for k in result.tokens if k != d}
            kept = all(v.hi <= GATE_OTHERS for v in others.values())
            out.append(
                f"unlearning ({row.label}, lambda {-row.inputs[0][1]:g}): {d} {_pct(up)} vs the base "
                + ("(raised: holds)" if up.above(1) else "(NOT raised beyond noise)")
                + "; other domains "
                + ", ".join(f"{k} {_pct(v)}" for k, v in others.items())
                + (" (all within +5%: holds)" if kept else " (NOT all within +5%)")
            )
        elif row.scenario == "analogy":
            weight = {domain_of(ref): w for ref, w in row.inputs}
            parts = []
            for k in result.tokens:
                v = ratio(row, base, [k])
                w = weight.get(k, 0.0)
                expect = "down" if w > 0 else "up" if w < 0 else "flat"
                ok = v.below(1) if w > 0 else v.above(1) if w < 0 else v.lo <= 1 <= v.hi
                parts.append(f"{k} {_pct(v)} (expected {expect}: {'holds' if ok else 'does NOT hold'})")
            out.append(f"analogy ({row.label} = {row.detail}): vs the base " + "; ".join(parts))
    out += _style_claims(result.style)
    out += interference_claims(result)
    out += decoding_claims(result)
    return out


def _style_claims(style_rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for decoding in ("greedy", "sampled"):
        rows = [r for r in style_rows if r["decoding"] == decoding]
        if len(rows) < 2:
            continue
        base = rows[0]
        rate = {
            r["model"]: sum(c[0] for c in r["counts"]) / max(1, sum(c[1] for c in r["counts"])) for r in rows
        }
        line = (
            f"Python-code rate of {decoding} generations from {len(base['counts'])} held-out code prompts: "
            + ", ".join(f"{m} {v:.0%}" for m, v in rate.items())
        )
        if len(rows) >= 3:
            diff = rate_difference([tuple(c) for c in rows[-1]["counts"]], [tuple(c) for c in base["counts"]])
            line += (
                f"; unlearned minus base {diff.value * 100:+.0f} points "
                f"[{diff.lo * 100:+.0f}, {diff.hi * 100:+.0f}] "
                + ("(lower: holds)" if diff.hi < 0 else "(NOT lower beyond noise)")
            )
        out.append(line)
    return out


def sum_points(result: Any, label: str) -> list[tuple[float, float, str]]:
    """(RMS cosine, loss, row label) of each pairwise sum made with the PairMethod `label`: loss is the
    sum's own-domain perplexity relative to each parent's, mean of the two (log scale), in %."""
    by_ref = {r.ref: r for r in result.rows if r.ref}
    rs = Resampler(result.tokens)
    out = []
    for row in result.rows:
        if (
            row.kind != "result"
            or row.status != "succeeded"
            or not row.label.startswith(f"{plan.NAMESPACE}/sum-")
        ):
            continue
        if row.label.split("@")[0].rsplit("-", 1)[1] != label:
            continue
        parents = _parents(by_ref, row)
        if parents is None or len(parents) != 2:
            continue
        logs = [
            math.log(rs.ratio([domain_of(ref)], row.docs, p.docs).value)
            for (ref, _), p in zip(row.inputs, parents, strict=True)
        ]
        cos = next(
            (i["rms_cosine"] for i in result.interference if i["composition"] == row.ref), float("nan")
        )
        out.append((cos, (math.exp(sum(logs) / 2) - 1) * 100, row.label))
    return out


def interference_claims(result: Any) -> list[str]:
    out = []
    for pm in plan.PAIR_METHODS:
        pts = sorted(sum_points(result, pm.label))
        if len(pts) < 3:
            if pts:
                out.append(
                    f"interference ({pm.label} sums): only {len(pts)} pair(s): "
                    + "; ".join(f"{lab} cos {c:.4f} loss {v:+.1f}%" for c, v, lab in pts)
                    + " (no correlation computed)"
                )
            continue
        r = pearson([p[0] for p in pts], [p[1] for p in pts])
        p = permutation_p([p[0] for p in pts], [p[1] for p in pts])
        verdict = (
            "higher interference, larger loss: holds"
            if r > 0 and p < 0.05
            else "the paper's positive correlation does NOT hold beyond noise"
        )
        out.append(
            f"interference vs loss over {len(pts)} pairwise {pm.label} sums (loss = own-domain perplexity vs "
            f"each parent, mean): Pearson r = {r:+.2f} (permutation p = {p:.2f}; {verdict}): "
            + "; ".join(
                f"{lab.split('@')[0].removeprefix(plan.NAMESPACE + '/sum-')} cos {c:.4f} loss {v:+.1f}%"
                for c, v, lab in pts
            )
        )
    return out


@dataclass(frozen=True)
class PairCost:
    """One summed pair: its exact sum (delta_cat), the same at decoding time, and core_merge."""

    name: str  # x-y
    domains: list[str]
    cat: RealRow
    decoding: RealRow
    core: RealRow | None
    rms_cosine: float
    core_overlap: float


def pair_costs(result: Any) -> list[PairCost]:
    rows = {r.label.split("@")[0]: r for r in result.rows if r.kind == "result" and r.ref}
    out = []
    for dec in (r for r in result.rows if r.kind == "decoding"):
        cat = next((r for r in result.rows if r.ref == dec.decoding_of), None)
        if cat is None or not cat.label.split("@")[0].endswith("-cat"):
            continue
        stem = cat.label.split("@")[0].removesuffix("-cat")
        core = rows.get(stem + "-core")
        cos = next((i["rms_cosine"] for i in result.interference if i["composition"] == cat.ref), math.nan)
        overlap = next(
            (
                i["core_overlap"]
                for i in result.interference
                if core is not None and i["composition"] == core.ref and "core_overlap" in i
            ),
            math.nan,
        )
        out.append(
            PairCost(
                name=stem.removeprefix(f"{plan.NAMESPACE}/sum-"),
                domains=[domain_of(ref) for ref, _ in cat.inputs],
                cat=cat,
                decoding=dec,
                core=core,
                rms_cosine=cos,
                core_overlap=overlap,
            )
        )
    return out


def decoding_claims(result: Any) -> list[str]:
    """Per pair: the interference cost (exact weight-space sum vs the same sum at decoding time, on
    the pair's own domains), core_merge against both, and which of the three wins beyond noise; then
    which diagnostic, RMS cosine or core overlap, predicts the cost better over the pairs."""
    rs = Resampler(result.tokens)
    out = []
    points: list[tuple[float, float, float, str]] = []  # (cosine, overlap, cost %, pair)
    for pc in pair_costs(result):
        ds = pc.domains
        cost = rs.ratio(ds, pc.cat.docs, pc.decoding.docs)
        methods = {"delta_cat": pc.cat, "decoding time": pc.decoding}
        line = (
            f"weight space vs decoding time ({pc.name}, own domains {'+'.join(ds)}): delta_cat {_pct(cost)}"
        )
        if pc.core is not None:
            methods["core_merge"] = pc.core
            line += (
                f", core_merge {_pct(rs.ratio(ds, pc.core.docs, pc.decoding.docs))}; "
                f"core_merge vs delta_cat {_pct(rs.ratio(ds, pc.core.docs, pc.cat.docs))}"
            )
        winners = [
            name
            for name, row in methods.items()
            if all(rs.ratio(ds, row.docs, other.docs).below(1) for o, other in methods.items() if o != name)
        ]
        line += "; " + (f"{winners[0]} wins beyond noise" if winners else "no method wins beyond noise")
        out.append(line)
        points.append((pc.rms_cosine, pc.core_overlap, (cost.value - 1) * 100, pc.name))
    if not points:
        return out
    if len(points) < 3:
        out.append(
            f"interference cost: only {len(points)} pair(s) (no correlation computed): "
            + "; ".join(f"{n} cos {c:.4f} core overlap {o:.4f} cost {v:+.1f}%" for c, o, v, n in points)
        )
        return out
    costs = [p[2] for p in points]
    found = {}
    for label, xs in (("RMS cosine", [p[0] for p in points]), ("core overlap", [p[1] for p in points])):
        found[label] = (pearson(xs, costs), permutation_p(xs, costs))
    ranked = sorted(found, key=lambda k: found[k][0], reverse=True)
    best, (r_best, p_best) = ranked[0], found[ranked[0]]
    verdict = (
        f"{best} predicts it better (r = {r_best:+.2f}, p = {p_best:.2f})"
        if r_best > 0 and p_best < 0.05
        else f"neither predicts it beyond noise (the higher r: {best})"
    )
    out.append(
        f"interference cost vs diagnostics over {len(points)} pairs: RMS cosine r = "
        f"{found['RMS cosine'][0]:+.2f} (p = {found['RMS cosine'][1]:.2f}), core overlap r = "
        f"{found['core overlap'][0]:+.2f} (p = {found['core overlap'][1]:.2f}); {verdict}: "
        + "; ".join(f"{n} cos {c:.4f} overlap {o:.4f} cost {v:+.1f}%" for c, o, v, n in sorted(points))
    )
    return out


def table(result: Any) -> list[str]:
    rs = Resampler(result.tokens)
    domains = list(result.tokens)
    base = result.rows[0]
    lines = [
        "| row | scenario | how | " + " | ".join(domains) + " | mean |",
        "|" + "---|" * (len(domains) + 4),
    ]
    for row in result.rows:
        cells = []
        for d in domains:
            if d not in row.docs:
                cells.append("-")
                continue
            e = rs.ppl(d, row.docs[d])
            rel = "" if row.kind == "base" else f" ({(e.value / rs.point(d, base.docs[d]) - 1) * 100:+.0f}%)"
            cells.append(f"{e.fmt()}{rel}")
        mean = sum(rs.point(d, row.docs[d]) for d in domains) / len(domains)
        label = row.label + ("" if row.status == "succeeded" else f" ({row.status})")
        lines.append(
            f"| {label} | {row.scenario or row.kind} | {row.detail} | "
            + " | ".join(cells)
            + f" | {mean:.2f} |"
        )
    return lines


def sizes_table(sizes: dict[str, Any]) -> list[str]:
    """The corpora after hygiene (corpora.Sizes per domain) and each training set's files and tokens."""
    cols = ["found", "generated", "near_duplicates", "leaked_windows", "test", "val", "train"]
    lines = [
        "| domain | " + " | ".join(c.replace("_", " ") for c in cols) + " | max Jaccard | max containment |",
        "|" + "---|" * (len(cols) + 3),
    ]
    for d, s in sizes.items():
        if d != "training_sets":
            lines.append(
                f"| {d} | "
                + " | ".join(str(s[c]) for c in cols)
                + f" | {s['max_jaccard']:.3f} | {s['max_containment']:.3f} |"
            )
    sets = sizes.get("training_sets", {})
    lines += ["", "| training set | files used | tokens |", "|---|---|---|"]
    lines += [f"| {k} | {v['files']} | {v['tokens']} |" for k, v in sets.items()]
    return lines


def emit(reg: service.Registry, result: RealResult, say: Callable[[str], None]) -> None:
    tab = table(result)
    data_lines = sizes_table(result.sizes)
    inter = [
        "| pair | predicted interference (RMS cosine) | core overlap (RMS) | composition |",
        "|---|---|---|---|",
    ]
    for item in result.interference:
        overlap = f"{item['core_overlap']:.4f}" if "core_overlap" in item else "-"
        inter.append(
            f"| {item['a']} + {item['b']} | {item['rms_cosine']:.4f} | {overlap} | {item['composition']} |"
        )
    lam = [
        "| lambda | " + " | ".join(sorted({k for c in result.search for k in c["val"]})) + " | passes gate |",
    ]
    keys = sorted({k for c in result.search for k in c["val"]})
    lam.append("|" + "---|" * (len(keys) + 2))
    for c in result.search:
        w = -next(iter(c["weights"].values()))
        lam.append(
            f"| {w:g} | " + " | ".join(f"{c['val'][k]:.2f}" for k in keys) + f" | {c['passes_gates']} |"
        )
    gens = []
    for r in result.style:
        for prompt, text, counts in list(zip(r["prompts"], r["texts"], r["counts"], strict=True))[:2]:
            gens.append(
                f"[{r['model']}, {r['decoding']}, {counts[0]}/{counts[1]} code lines] {prompt!r} -> {text!r}"
            )
    checks = claims(result)
    tree = _lineage_lines(reg, result.lineage_root)

    say("")
    say("Data after hygiene (documents per domain; each capped at ~2k tokens):")
    for line in data_lines:
        say(line)
    say("")
    say("Perplexity per domain on held-out documents, 95% bootstrap interval over documents (% vs the base):")
    for line in tab:
        say(line)
    say("")
    say("Predicted interference per summed pair:")
    for line in inter:
        say(line)
    if result.search:
        say("")
        say("Unlearning search (validation perplexity per lambda; the gate keeps other domains within 5%):")
        for line in lam:
            say(line)
    say("")
    say("What the numbers show (paired 95% bootstrap intervals over held-out documents):")
    for line in checks:
        say("- " + line)
    say("")
    say(f"Lineage of {result.lineage_root}:")
    for line in tree:
        say("  " + line)

    md = [
        "# pemreg demo --real report",
        "",
        f"Base model `{result.base_ref}` (SmolLM2-135M-Instruct); {'quick' if result.quick else 'full'} run; "
        f"torch threads {result.threads}, precision {result.precision}. Every number is a real evaluation: "
        "the base through `Evaluator`, "
        "parents from the catalog's evaluations table, results from their composition's metrics, one "
        "perplexity per held-out document; intervals are 95% bootstrap over documents.",
        "",
        "## Data",
        "",
        "Generated files (more than half of the lines only literals), near-duplicates (word 5-gram Jaccard "
        ">= 0.5, across all splits) and held-out windows mostly found in another document are dropped; "
        "every document is capped at ~2k tokens.",
        "",
        *data_lines,
        "",
        "## Perplexity per domain",
        "",
        *tab,
        "",
        "## Predicted interference",
        "",
        *inter,
        "",
        "## Unlearning search",
        "",
        *(lam if result.search else ["(none)"]),
        "",
        "## What the numbers show",
        "",
        *[f"- {line}" for line in checks],
        "",
        "## Sample generations",
        "",
        *[f"- `{g}`" for g in gens],
        "",
        f"## Lineage of {result.lineage_root}",
        "",
        "```",
        *tree,
        "```",
        "",
        f"Wall time: {result.seconds:.0f} s.",
        "",
    ]
    result.report_path.write_text("\n".join(md))
    _plot(result)
    result.json_path.write_text(
        json.dumps(
            {
                "base_model": result.base_ref,
                "base_folder": str(result.base_folder),
                "out_dir": str(result.out_dir),
                "doc_names": result.doc_names,
                "tokens": result.tokens,
                "rows": [asdict(r) for r in result.rows],
                "interference": result.interference,
                "style": result.style,
                "search": result.search,
                "lineage_root": result.lineage_root,
                "seconds": result.seconds,
                "threads": result.threads,
                "precision": result.precision,
                "quick": result.quick,
                "sizes": result.sizes,
            },
            indent=1,
        )
    )
    say("")
    say(f"report: {result.report_path}  plot: {result.plot_path}  data: {result.json_path}")
    say(f"demo wall time: {result.seconds:.0f} s")


def _plot(result: RealResult) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rs = Resampler(result.tokens)
    domains = list(result.tokens)
    base = result.rows[0]
    rows = [r for r in result.rows[1:] if r.docs]
    fig, axes = plt.subplots(
        1, 2, figsize=(max(10, 0.8 * len(rows) + 6), 5), gridspec_kw={"width_ratios": [3, 1]}
    )
    ax = axes[0]
    width = 0.8 / len(domains)
    for k, d in enumerate(domains):
        xs = [i + (k - (len(domains) - 1) / 2) * width for i in range(len(rows))]
        es = [rs.ratio([d], r.docs, base.docs) for r in rows]
        ys = [(e.value - 1) * 100 for e in es]
        err = [[(e.value - e.lo) * 100 for e in es], [(e.hi - e.value) * 100 for e in es]]
        ax.bar(xs, ys, width, yerr=err, capsize=1.5, label=d)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([r.label.replace("real/", "") for r in rows], rotation=40, ha="right", fontsize=7)
    ax.set_ylabel("perplexity vs base (%), 95% CI")
    ax.set_yscale("symlog", linthresh=50)
    ax.set_title("pemreg demo --real: SmolLM2-135M, per-domain change vs the base")
    ax.legend(title="held-out domain", fontsize=7)
    ax2 = axes[1]
    for pm in plan.PAIR_METHODS:
        pts = sum_points(result, pm.label)
        ax2.scatter([p[0] for p in pts], [p[1] for p in pts], label=pm.label)
    ax2.set_xlabel("RMS cosine of the pair's deltas")
    ax2.set_ylabel("loss of the sum vs its parents (%)")
    ax2.set_title("interference vs loss")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(result.plot_path, dpi=110)
    plt.close(fig)
