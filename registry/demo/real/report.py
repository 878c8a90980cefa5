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
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from registry.service.catalog.evaluations import cached_values

from ... import service
from ...evaluation import load_dataset
from ..report import _lineage_lines, _weights
from . import pairs as pairs_mod
from . import plan
from .claims import Claim, claims, domain_of
from .stats import accuracy, ppl


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
    items: dict[str, list[float]] = field(default_factory=dict)  # task -> correctness (0/1) per test item


@dataclass
class RealResult:
    out_dir: Path
    base_ref: str
    base_folder: Path
    doc_names: dict[str, list[str]]  # domain -> evaluation names, in order
    tokens: dict[str, list[int]]  # domain -> scored tokens per document, same order
    item_names: dict[str, list[str]]  # generated task -> its test items' evaluation names, in order
    rows: list[RealRow]
    interference: list[dict[str, Any]]
    style: list[dict[str, Any]]
    lineage_root: str
    seconds: float
    threads: int = 1
    precision: str = "fp32"
    quick: bool = False
    search: list[dict[str, Any]] = field(default_factory=list)
    transfer_search: list[dict[str, Any]] = field(default_factory=list)  # c per validation accuracy
    method_search: list[dict[str, Any]] = field(default_factory=list)  # method x scale, validation
    sizes: dict[str, Any] = field(default_factory=dict)  # the corpora after hygiene (runner._prepare)
    controls: list[dict[str, Any]] = field(default_factory=list)  # the pair sweep (sweep.Control as dicts)
    diagnostics: list[dict[str, Any]] = field(default_factory=list)  # per pair of LoRAs: the overlaps

    @property
    def report_path(self) -> Path:
        return self.out_dir / "report.md"

    @property
    def plot_path(self) -> Path:
        return self.out_dir / "demo-real.png"

    @property
    def json_path(self) -> Path:
        return self.out_dir / "results.json"


def collect(
    reg: service.Registry,
    base_ref: str,
    base_folder: Path,
    base_metrics: dict[str, float],
    held_out: list[Any],
    items: list[Any],
    views: list[tuple[str, Any, Any]],
    style_rows: list[dict[str, Any]],
    out_dir: Path,
    seconds: float,
    *,
    threads: int,
    precision: str,
    quick: bool,
    sizes: dict[str, Any],
    controls: list[dict[str, Any]],
    diagnostics: list[dict[str, Any]],
    evaluated: dict[str, dict[str, float]] | None = None,
) -> RealResult:
    """`evaluated`: adapter label -> held-out perplexities of the adapters no composition takes as
    input (the sweep evaluates those in process; the others' values are the flows', from the cache)."""
    names: dict[str, list[str]] = {}
    tokens: dict[str, list[int]] = {}
    for h in held_out:
        names.setdefault(h.domain, []).append(h.name)
        tokens.setdefault(h.domain, []).append(h.tokens)
    digests = {h.name: load_dataset(str(h.path), "perplexity", None).sha256 for h in held_out}
    item_names: dict[str, list[str]] = {}
    for it in items:
        item_names.setdefault(it.task, []).append(it.name)
    item_digests = {it.name: load_dataset(str(it.path), "accuracy", None).sha256 for it in items}

    def per_doc(values: dict[str, float]) -> dict[str, list[float]]:
        """The domains every test document of which was evaluated (specs evaluate the domains their
        claims read, plan.scenarios)."""
        return {d: [float(values[n]) for n in ns] for d, ns in names.items() if all(n in values for n in ns)}

    def per_item(values: dict[str, float]) -> dict[str, list[float]]:
        """The generated tasks every test item of which was evaluated (correctness 0 or 1 each)."""
        return {
            t: [float(values[n]) for n in ns] for t, ns in item_names.items() if all(n in values for n in ns)
        }

    rows = [
        RealRow(
            label=f"base {base_ref}",
            ref=None,
            kind="base",
            detail="no adapter",
            docs=per_doc(base_metrics),
            items=per_item(base_metrics),
        )
    ]
    parents = {
        label: RealRow(label=label, ref=label, kind="adapter", detail="trained", docs=per_doc(values))
        for label, values in (evaluated or {}).items()
    }
    results: list[RealRow] = []
    interference: list[dict[str, Any]] = []
    search: list[dict[str, Any]] = []
    transfer_search: list[dict[str, Any]] = []
    method_search: list[dict[str, Any]] = []
    lineage_root = ""
    # an input that an earlier spec of the run composed (the transfer's domain vector) is that spec's
    # result row, not a trained adapter's
    outputs = {f"{v.output.name}@{v.output.version}" for _, _, v in views if v.output is not None}
    for scenario, spec, view in views:
        for item in view.inputs:
            label = f"{item.name}@{item.version}"
            if label not in parents and label not in outputs:
                wanted = {n: ("perplexity", d) for n, d in digests.items()}
                wanted |= {n: ("accuracy", d) for n, d in item_digests.items()}
                values = cached_values(reg, label, wanted)
                if per_doc(values) or per_item(values):  # every flow has run: any spec's evaluations
                    parents[label] = RealRow(
                        label=label,
                        ref=label,
                        kind="adapter",
                        detail="trained",
                        docs=per_doc(values),
                        items=per_item(values),
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
                items=per_item(view.metrics),
            )
        )
        record = view.interference or {}
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
        elif scenario == "domain transfer":
            transfer_search = _search_record(reg, ref)
        elif scenario == "method search":
            method_search = _search_record(reg, ref)
    rows += sorted(parents.values(), key=lambda r: r.label) + results
    return RealResult(
        out_dir=out_dir,
        base_ref=base_ref,
        base_folder=base_folder,
        doc_names=names,
        tokens=tokens,
        item_names=item_names,
        rows=rows,
        interference=interference,
        style=style_rows,
        lineage_root=lineage_root or next((r.ref for r in results if r.ref), ""),
        seconds=seconds,
        threads=threads,
        precision=precision,
        quick=quick,
        search=search,
        transfer_search=transfer_search,
        method_search=method_search,
        sizes=sizes,
        controls=controls,
        diagnostics=diagnostics,
    )


def _search_record(reg: service.Registry, ref: str | None) -> list[dict[str, Any]]:
    """A search's candidates (method, scale, weights, validation metrics, gate verdicts, the winner)
    from the provenance."""
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
            "method": c.method,
            "scale": c.scale,
            "winner": c.winner,
        }
        for c in candidates
    ]


# the sweep's name (sweep.Control.method of kind tuned) of a method the product's search tries
_SWEEP_NAME = {"delta_cat": pairs_mod.TUNED_SUM}


def method_search_table(result: Any) -> list[str]:
    """The product's method search (plan.SEARCH_METHODS x plan.TUNE_SCALES on MAIN_PAIR's pooled
    validation) beside the sweep's in-process validation perplexity of the same method and scale:
    two evaluation paths (the flow's evaluator on composed files; the resident model's prefix cache)
    that must agree."""
    x, y = (plan.ref(n) for n in plan.MAIN_PAIR)
    key = plan.pair_val_key(*plan.MAIN_PAIR)
    swept: dict[tuple[str, float], float] = {}
    for c in result.controls:
        if c["kind"] == "tuned" and [r.rsplit("@", 1)[0] for r in c["pair"]] == [x, y]:
            swept |= {(c["method"], float(s)): float(v) for s, v in c["val"]}
    lines = [
        f"| method | scale | {key} (the search) | same in the sweep | chosen |",
        "|---|---|---|---|---|",
    ]
    for c in result.method_search:
        mine = swept.get((_SWEEP_NAME.get(c["method"], c["method"]), float(c["scale"])))
        lines.append(
            f"| {c['method']} | {c['scale']:g} | {c['val'][key]:.4f} | "
            f"{'-' if mine is None else f'{mine:.4f}'} | {'yes' if c['winner'] else ''} |"
        )
    return lines


def table(result: Any) -> list[str]:
    domains = list(result.tokens)
    base = result.rows[0]
    lines = [
        "| row | scenario | how | " + " | ".join(domains) + " |",
        "|" + "---|" * (len(domains) + 3),
    ]
    for row in result.rows:
        if row.kind != "base" and not row.docs:  # a task row (task_table) or no evaluation at all
            continue
        cells = []
        for d in domains:
            if d not in row.docs:
                cells.append("-")
                continue
            e = ppl(row.docs[d])
            rel = "" if row.kind == "base" else f" ({(e.value / ppl(base.docs[d]).value - 1) * 100:+.0f}%)"
            cells.append(f"{e.fmt()}{rel}")
        label = row.label + ("" if row.status == "succeeded" else f" ({row.status})")
        lines.append(f"| {label} | {row.scenario or row.kind} | {row.detail} | " + " | ".join(cells) + " |")
    return lines


def task_table(result: Any) -> list[str]:
    """Accuracy per generated task on its test items (95% t interval over items), for every row that
    was evaluated on a task; points vs the base."""
    tasks = list(result.item_names)
    base = result.rows[0]
    lines = ["| row | scenario | how | " + " | ".join(tasks) + " |", "|" + "---|" * (len(tasks) + 3)]
    for row in result.rows:
        if not row.items:
            continue
        cells = []
        for t in tasks:
            if t not in row.items:
                cells.append("-")
                continue
            e = accuracy(row.items[t])
            rel = "" if row.kind == "base" else f" ({(e.value - accuracy(base.items[t]).value) * 100:+.0f})"
            cells.append(f"{e.value * 100:.0f}% [{e.lo * 100:.0f}, {e.hi * 100:.0f}]{rel}")
        label = row.label + ("" if row.status == "succeeded" else f" ({row.status})")
        lines.append(f"| {label} | {row.scenario or row.kind} | {row.detail} | " + " | ".join(cells) + " |")
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


def diagnostics_table(result: Any) -> list[str]:
    """Per pair of LoRAs: the three diagnostics and the exact sum's own-domain loss (the interference)."""
    found = {(p.a, p.b): p for p in pairs_mod.build(result.controls, result.rows, domain_of)}
    lines = [
        "| pair | RMS cosine | subspace overlap | core overlap | exact-sum loss on own domains |",
        "|---|---|---|---|---|",
    ]
    for d in result.diagnostics:
        p = found.get((d["a"], d["b"]))
        loss = f"{pairs_mod.interference(p):+.2f}%" if p is not None else "-"
        lines.append(
            f"| {pairs_mod.short(d['a'])}+{pairs_mod.short(d['b'])} | {d['rms_cosine']:.4f} | "
            f"{d['subspace_overlap']:.4f} | "
            f"{d['core_overlap']:.4f} | {loss} |"
        )
    return lines


@dataclass(frozen=True)
class _Section:
    """One table of the report: its printed title, its report.md heading, its lines."""

    title: str
    heading: str
    lines: list[str]
    shown: bool = True  # False: not printed; "(none)" in report.md
    intro: str = ""  # report.md only: a paragraph before the table

    def markdown(self) -> list[str]:
        intro = [self.intro, ""] if self.intro else []
        return [f"## {self.heading}", "", *intro, *(self.lines if self.shown else ["(none)"]), ""]


def emit(reg: service.Registry, result: RealResult, say: Callable[[str], None]) -> None:
    tab = table(result)
    task_lines = task_table(result)
    transfer = [f"| c | {plan.transfer_key(plan.TRANSFER_TARGET)} validation accuracy |", "|---|---|"]
    for c in result.transfer_search:
        w = next(v for k, v in c["weights"].items() if k.split("@")[0] == plan.ref("domain-vector"))
        transfer += [f"| {w:g} | " + ", ".join(f"{v * 100:.0f}%" for v in c["val"].values()) + " |"]
    data_lines = sizes_table(result.sizes)
    built = pairs_mod.build(result.controls, result.rows, domain_of)
    sweep_lines = pairs_mod.sweep_table(built)
    tuned_lines = pairs_mod.tuned_table(built)
    vs_sum_lines = pairs_mod.vs_tuned_sum_table(built)
    search_lines = method_search_table(result)
    diag_lines = diagnostics_table(result)
    stated = [f"{k}: {v}" for k, v in plan.PRIMARY]
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
    found: list[Claim] = claims(result)
    checks = [c.line for c in found]
    n_primary = sum(c.id.startswith("P") for c in found)
    n_secondary = len(found) - n_primary
    n_intervals = sum(len(c.estimates) for c in found if c.id.startswith("S"))
    stats_note = (
        f"Primary claims: {n_primary}, tested at {1 - 0.05 / plan.PRIMARY_INTERVALS:.4f} each "
        f"(Bonferroni over their {plan.PRIMARY_INTERVALS} intervals and tests); secondary checks: "
        f"{n_secondary} with {n_intervals} intervals or tests at 95%, uncorrected and descriptive. "
        "Intervals: Student t on per-document paired log differences (stats.py says why)."
    )
    tree = _lineage_lines(reg, result.lineage_root)

    hygiene = (
        "Generated files (more than half of the lines only literals), near-duplicates (word 5-gram Jaccard "
        ">= 0.5, across all splits) and held-out windows mostly found in another document are dropped; "
        "every document is capped at ~2k tokens."
    )
    # Each table once: printed under its title (when it has rows) and in report.md under its heading.
    sections = [
        _Section(
            "Data after hygiene (documents per domain; each capped at ~2k tokens):",
            "Data",
            data_lines,
            intro=hygiene,
        ),
        _Section(
            "Perplexity per domain on held-out documents, 95% t interval over documents (% vs the base):",
            "Perplexity per domain",
            tab,
        ),
        _Section(
            "Accuracy per generated task on its test items, 95% t interval over items (points vs the base):",
            "Accuracy per generated task",
            task_lines,
        ),
        _Section(
            "Domain transfer search (c on the target's validation items):",
            "Domain transfer search",
            transfer,
            shown=bool(result.transfer_search),
        ),
        _Section(
            "Pair sweep: retention on each parent's own domain (method vs parent, 95% t interval):",
            "Pair sweep (retention on each parent's own domain)",
            sweep_lines,
        ),
        _Section(
            "Each variant at its own scale chosen on the pair's pooled validation documents (s=, then "
            "retention on each parent's own domain, 95% t interval):",
            "Each variant at its validation-chosen scale",
            tuned_lines,
        ),
        _Section(
            "Each tuned method vs the tuned scaled sum, pooled own domains (95% t interval):",
            "Each tuned method vs the tuned scaled sum",
            vs_sum_lines,
        ),
        _Section(
            "The product's method search (search.methods x search.scale) on validation:",
            "The product's method search",
            search_lines,
            shown=bool(result.method_search),
        ),
        _Section(
            "Diagnostics per pair of LoRAs and the exact sum's own-domain loss:",
            "Diagnostics and interference per pair of LoRAs",
            diag_lines,
        ),
        _Section(
            "Predicted interference per composition (the flow's report):",
            "Predicted interference per composition",
            inter,
        ),
        _Section(
            "Unlearning search (validation perplexity per lambda; the gate keeps other domains within "
            f"{plan.UNLEARN_GATE_SLACK:.0%}):",
            "Unlearning search",
            lam,
            shown=bool(result.search),
        ),
    ]

    say("")
    say("Primary claims (stated before the run, plan.PRIMARY):")
    for line in stated:
        say("  " + line)
    for section in sections:
        if section.shown:
            say("")
            say(section.title)
            for line in section.lines:
                say(line)
    say("")
    say("What the numbers show. " + stats_note)
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
        "perplexity per held-out document; intervals are Student t over documents.",
        "",
        "## Primary claims (stated before the run)",
        "",
        *[f"- {line}" for line in stated],
        "",
        *[line for section in sections for line in section.markdown()],
        "## What the numbers show",
        "",
        stats_note,
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
                "item_names": result.item_names,
                "rows": [asdict(r) for r in result.rows],
                "interference": result.interference,
                "style": result.style,
                "search": result.search,
                "transfer_search": result.transfer_search,
                "method_search": result.method_search,
                "lineage_root": result.lineage_root,
                "seconds": result.seconds,
                "threads": result.threads,
                "precision": result.precision,
                "quick": result.quick,
                "sizes": result.sizes,
                "controls": result.controls,
                "diagnostics": result.diagnostics,
                "primary_claims": dict(plan.PRIMARY),
                "statistics": stats_note,
                "claims": [asdict(c) for c in found],
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

    from .stats import ratio

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
        es = [ratio([d], r.docs, base.docs) if d in r.docs else None for r in rows]
        nan = float("nan")
        ys = [(e.value - 1) * 100 if e else nan for e in es]
        err = [
            [(e.value - e.lo) * 100 if e else nan for e in es],
            [(e.hi - e.value) * 100 if e else nan for e in es],
        ]
        ax.bar(xs, ys, width, yerr=err, capsize=1.5, label=d)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([r.label.replace("real/", "") for r in rows], rotation=40, ha="right", fontsize=7)
    ax.set_ylabel("perplexity vs base (%), 95% t interval")
    ax.set_yscale("symlog", linthresh=50)
    ax.set_title("pemreg demo --real: SmolLM2-135M, per-domain change vs the base")
    ax.legend(title="held-out domain", fontsize=7)
    ax2 = axes[1]
    found = {(p.a, p.b): p for p in pairs_mod.build(result.controls, result.rows, domain_of)}
    pts = [
        (d["rms_cosine"], pairs_mod.interference(found[(d["a"], d["b"])]))
        for d in result.diagnostics
        if (d["a"], d["b"]) in found
    ]
    ax2.scatter([p[0] for p in pts], [p[1] for p in pts])
    ax2.set_xlabel("RMS cosine of the pair's deltas")
    ax2.set_ylabel("exact sum's own-domain loss vs its parents (%)")
    ax2.set_title("interference vs loss")
    fig.tight_layout()
    fig.savefig(result.plot_path, dpi=110)
    plt.close(fig)
