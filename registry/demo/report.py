"""The demo's table, lineage tree, markdown report, PNG plot and results.json.

Numbers come from three places only, all real evaluations: the base model through `Evaluator`
(the flow's own evaluator class), each parent from the catalog's evaluations table (recorded by the
flow), each result from its composition's metrics. results.json names every row's registered
artifact so a test can download it and recompute every number.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.service.catalog.evaluations import cached_value

from .. import service
from ..evaluation import load_dataset

if TYPE_CHECKING:
    from .scenarios import Row


def collect(
    reg: service.Registry,
    base_ref: str,
    base_folder: Path,
    base_metrics: dict[str, float],
    views: list[tuple[str, str, Any, Any]],
    domains: list[str],
    out_dir: Path,
    data_dir: Path,
    seconds: float,
) -> Any:
    from .scenarios import DemoResult, Row

    digests = {d: load_dataset(str(data_dir / f"{d}-test.jsonl"), "perplexity", None).sha256 for d in domains}
    rows = [Row(label=f"base {base_ref}", ref=None, kind="base", detail="no adapter", ppl=dict(base_metrics))]
    parents: dict[str, Row] = {}
    results: list[Row] = []
    interference: list[dict[str, Any]] = []
    lineage_root = ""
    for scenario, filename, spec, view in views:
        for item in view.inputs:
            label = f"{item.name}@{item.version}"
            if label not in parents:
                ppl = {}
                for d in domains:
                    value = cached_value(reg, label, "perplexity", digests[d])
                    if value is not None:
                        ppl[d] = value
                parents[label] = Row(label=label, ref=label, kind="adapter", detail="trained", ppl=ppl)
        weights = _weights(view)
        detail = f"{view.method}: " + " ".join(
            f"{w:+g}*{n.split('/')[1].rsplit('@', 1)[0]}" for n, w in weights
        )
        ref = f"{view.output.name}@{view.output.version}" if view.output else None
        results.append(
            Row(
                label=ref or spec.name,
                ref=ref,
                kind="result",
                scenario=scenario,
                detail=detail,
                ppl={d: float(view.metrics[d]) for d in domains if d in view.metrics},
                status=view.status,
                inputs=weights,
            )
        )
        pairs = (view.interference or {}).get("pairs", [])
        names = (view.interference or {}).get("names") or [f"{i.name}@{i.version}" for i in view.inputs]
        for p in pairs:
            interference.append(
                {
                    "a": names[p["i"]],
                    "b": names[p["j"]],
                    "rms_cosine": p["rms_cosine"],
                    "composition": ref or spec.name,
                    "spec": filename,
                }
            )
        if scenario == "unlearning" and ref:
            lineage_root = ref
    if not lineage_root:
        lineage_root = next((r.ref for r in results if r.ref), "")
    rows += sorted(parents.values(), key=lambda r: r.label) + results
    return DemoResult(
        out_dir=out_dir,
        data_dir=data_dir,
        base_ref=base_ref,
        base_folder=base_folder,
        rows=rows,
        interference=interference,
        lineage_root=lineage_root,
        seconds=seconds,
        report_path=out_dir / "report.md",
        plot_path=out_dir / "demo.png",
        json_path=out_dir / "results.json",
    )


def _weights(view: Any) -> list[tuple[str, float]]:
    """The weights the result was made with (the search's pick, for a search)."""
    return [(f"{i.name}@{i.version}", i.applied_weight) for i in view.inputs]


def _fmt_table(result: Any, domains: list[str]) -> list[str]:
    base = result.rows[0].ppl
    head = "| row | scenario | how | " + " | ".join(domains) + " | union (mean) |"
    lines = [head, "|" + "---|" * (len(domains) + 4)]
    for row in result.rows:
        cells = []
        for d in domains:
            v = row.ppl.get(d)
            if v is None:
                cells.append("-")
            elif row.kind == "base":
                cells.append(f"{v:.3f}")
            else:
                cells.append(f"{v:.3f} ({(v / base[d] - 1) * 100:+.0f}%)")
        vals = [row.ppl[d] for d in domains if d in row.ppl]
        union = f"{sum(vals) / len(vals):.3f}" if len(vals) == len(domains) else "-"
        label = row.label + ("" if row.status == "succeeded" else f" ({row.status})")
        lines.append(
            f"| {label} | {row.scenario or row.kind} | {row.detail} | " + " | ".join(cells) + f" | {union} |"
        )
    return lines


def _lineage_lines(reg: service.Registry, root: str) -> list[str]:
    if not root:
        return []
    graph = service.lineage(reg, root)
    follow: dict[str, list[Any]] = {}
    for e in graph.edges:
        follow.setdefault(e.child, []).append(e)
    out = [root]

    def grow(label: str, indent: str) -> None:
        for e in sorted(follow.get(label, []), key=lambda e: e.parent):
            out.append(f"{indent}└── {e.parent}  ({e.operator}, weight {e.weight:+g})")
            grow(e.parent, indent + "    ")

    grow(root, "")
    return out


def _domain_of(ref: str) -> str:
    return ref.split("/", 1)[1].split("@")[0].split("-")[0]


def _pct(x: float) -> str:
    return f"{x * 100:+.1f}%"


def _parents(by_ref: dict[str, Row], row: Row) -> list[Row] | None:
    """The rows of `row`'s inputs, or None when one of them is missing from the result."""
    found = [by_ref.get(ref) for ref, _ in row.inputs]
    parents = [p for p in found if p is not None]
    return parents if len(parents) == len(found) else None


def claims(result: Any) -> list[str]:
    """The paper's effects, checked on the measured numbers (derived from the table, nothing else)."""
    base = result.rows[0].ppl
    by_ref = {r.ref: r for r in result.rows if r.ref}
    out: list[str] = []
    for row in result.rows:
        if row.kind != "result" or row.status != "succeeded":
            continue
        parents = _parents(by_ref, row)
        if parents is None:
            continue
        if row.scenario == "distribution generalization":
            d = _domain_of(row.inputs[0][0])
            pv = [p.ppl[d] for p in parents]
            ok = row.ppl[d] < min(pv)
            out.append(
                f"distribution generalization ({row.label}): {d} {row.ppl[d]:.3f} vs parents "
                + ", ".join(f"{v:.3f}" for v in pv)
                + f", base {base[d]:.3f}: {'beats both parents' if ok else 'does not beat both parents'}"
                + (" and the base" if row.ppl[d] < base[d] else "")
            )
        elif row.scenario in ("multi-tasking", "(IA)3 merge") and len(parents) == 2:
            ds = [_domain_of(ref) for ref, _ in row.inputs]
            union = sum(row.ppl[d] for d in ds) / 2
            base_u = sum(base[d] for d in ds) / 2
            par_u = [sum(p.ppl[d] for d in ds) / 2 for p in parents]
            own = [row.ppl[d] / p.ppl[d] - 1 for d, p in zip(ds, parents, strict=True)]
            beats = union < base_u and all(union < u for u in par_u)
            within = all(o <= 0.15 for o in own)
            out.append(
                f"{row.scenario} ({row.label}): on {'+'.join(ds)} mean {union:.3f} "
                f"vs base {base_u:.3f}, parents "
                + ", ".join(f"{u:.3f}" for u in par_u)
                + f" ({'beats base and both parents' if beats else 'does not beat base and both parents'}); "
                + "own domain vs its parent "
                + ", ".join(f"{d} {_pct(o)}" for d, o in zip(ds, own, strict=True))
                + f" ({'within' if within else 'not within'} 15%)"
            )
        elif row.scenario == "unlearning":
            d = _domain_of(row.inputs[0][0])
            rel = {k: row.ppl[k] / base[k] - 1 for k in base}
            others = max(abs(v) for k, v in rel.items() if k != d)
            ratio = rel[d] / others if others else float("inf")
            strong = "holds" if rel[d] >= 0.2 and others <= 0.05 else "does not hold"
            out.append(
                f"unlearning ({row.label}, lambda {-row.inputs[0][1]:g}): {d} {_pct(rel[d])} vs base, "
                f"largest move elsewhere {_pct(others)} (ratio {ratio:.1f}x; "
                f"target >= +20% with others <= 5%: {strong})"
            )
        elif row.scenario == "analogy":
            out.append(
                f"analogy ({row.label} = {row.detail}): vs base "
                + ", ".join(f"{k} {_pct(row.ppl[k] / base[k] - 1)}" for k in base)
            )
    sums = []
    for row in result.rows:
        if row.kind == "result" and row.scenario == "multi-tasking" and row.detail.startswith("delta_cat"):
            parents = _parents(by_ref, row)
            if parents is None or len(parents) != 2:
                continue
            ds = [_domain_of(ref) for ref, _ in row.inputs]
            loss = sum(row.ppl[d] / p.ppl[d] - 1 for d, p in zip(ds, parents, strict=True)) / 2
            cos = next(
                (i["rms_cosine"] for i in result.interference if i["composition"] == row.ref), float("nan")
            )
            sums.append((cos, loss, row.label))
    if len(sums) >= 2:
        sums.sort()
        ordered = all(a[1] <= b[1] for a, b in zip(sums, sums[1:], strict=False))
        out.append(
            "interference vs loss of the delta_cat sums (own-domain perplexity vs each parent, mean): "
            + "; ".join(f"{label} cos {c:.4f} loss {_pct(v)}" for c, v, label in sums)
            + f" ({'higher interference, larger loss' if ordered else 'loss does not follow interference'})"
        )
    return out


def emit(reg: service.Registry, result: Any, say: Callable[[str], None]) -> None:
    domains = list(result.rows[0].ppl)
    table = _fmt_table(result, domains)
    inter = ["| pair | predicted interference (RMS cosine) | composition |", "|---|---|---|"]
    seen = set()
    for item in result.interference:
        key = (item["a"], item["b"], item["composition"])
        if key in seen:
            continue
        seen.add(key)
        inter.append(f"| {item['a']} + {item['b']} | {item['rms_cosine']:.4f} | {item['composition']} |")
    tree = _lineage_lines(reg, result.lineage_root)
    checks = claims(result)

    say("")
    say("Perplexity per domain on held-out lines (lower is better; % vs the base):")
    for line in table:
        say(line)
    say("")
    say("Predicted interference per summed pair:")
    for line in inter:
        say(line)
    say("")
    say("What the numbers show:")
    for line in checks:
        say("- " + line)
    say("")
    say(f"Lineage of {result.lineage_root}:")
    for line in tree:
        say("  " + line)

    md = [
        "# pemreg demo report",
        "",
        f"Base model `{result.base_ref}`; held-out sets in `{result.data_dir}`. Every number below is a "
        "real evaluation: the base through `Evaluator`, parents from the catalog's evaluations table, "
        "results from their composition's metrics.",
        "",
        "## Perplexity per domain",
        "",
        *table,
        "",
        "## Predicted interference",
        "",
        *inter,
        "",
        "## What the numbers show",
        "",
        *[f"- {line}" for line in checks],
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
    _plot(result, domains)
    result.json_path.write_text(
        json.dumps(
            {
                "base_model": result.base_ref,
                "base_folder": str(result.base_folder),
                "data_dir": str(result.data_dir),
                "domains": domains,
                "rows": [
                    {
                        "label": r.label,
                        "ref": r.ref,
                        "kind": r.kind,
                        "scenario": r.scenario,
                        "detail": r.detail,
                        "status": r.status,
                        "perplexity": r.ppl,
                        "inputs": r.inputs,
                    }
                    for r in result.rows
                ],
                "interference": result.interference,
                "lineage_root": result.lineage_root,
                "seconds": result.seconds,
            },
            indent=2,
        )
    )
    say("")
    say(f"report: {result.report_path}  plot: {result.plot_path}  data: {result.json_path}")
    say(f"demo wall time: {result.seconds:.0f} s")


def _plot(result: Any, domains: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = result.rows[0].ppl
    rows = [r for r in result.rows[1:] if r.ppl]
    fig, ax = plt.subplots(figsize=(max(8, 0.9 * len(rows) + 2), 4.5))
    width = 0.8 / len(domains)
    for k, d in enumerate(domains):
        xs = [i + (k - (len(domains) - 1) / 2) * width for i in range(len(rows))]
        ys = [(r.ppl.get(d, float("nan")) / base[d] - 1) * 100 for r in rows]
        ax.bar(xs, ys, width, label=d)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([r.label.replace("demo/", "") for r in rows], rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("perplexity vs base (%)")
    ax.set_title("pemreg demo: per-domain perplexity change relative to the base model")
    ax.legend(title="held-out domain", fontsize=8)
    fig.tight_layout()
    fig.savefig(result.plot_path, dpi=110)
    plt.close(fig)
