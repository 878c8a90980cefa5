"""Prefect artifacts of a compose run: a markdown summary and a metrics table, visible in the UI."""

from __future__ import annotations

from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from registry.service.compositions.inputs import ResolvedInput
from registry.service.compositions.records import SearchRecord
from registry.spec import CompositionSpec


def _slug(name: str) -> str:
    # Artifact keys allow lowercase letters, digits and dashes only.
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"


def publish(
    spec: CompositionSpec,
    inputs: list[ResolvedInput],
    interference: dict[str, Any],
    metrics: dict[str, float],
    parents: dict[str, dict[str, float]],
    failures: list[str],
    search: SearchRecord | None,
) -> None:
    chosen = search.chosen if search is not None else None
    method = chosen.method if chosen is not None and chosen.method else spec.method
    lines = [
        f"# Composition `{spec.name}`",
        "",
        f"Method **{method}**"
        + (f" (scale {chosen.scale:g})" if chosen is not None and chosen.scale != 1.0 else ""),
        "",
        "| input | version | sha256 | weight |",
        "|---|---|---|---|",
    ]
    lines += [f"| {i.name} | {i.version} | `{i.sha256[:12]}` | {i.weight:+g} |" for i in inputs]
    pairs = interference.get("pairs", [])
    if pairs:
        lines += [
            "",
            "## Interference (RMS cosine of deltas over modules)",
            "",
            "| pair | rms cosine |",
            "|---|---|",
        ]
        lines += [
            f"| {inputs[p['i']].label} / {inputs[p['j']].label} | {p['rms_cosine']:.4f} |" for p in pairs
        ]
    for warning in interference.get("warnings", []):
        lines.append(f"> warning: {warning}")
    control = interference.get("control") or {}
    if control.get("modules"):  # does the method win by shrinking? (compose/controls.py)
        lines += [
            "",
            f"Controls: ||R|| / ||sum w_i D_i|| median {_fmt(control.get('median_norm_ratio'))} "
            f"(whole adapter {_fmt(control.get('total_norm_ratio'))}), cosine median "
            f"{_fmt(control.get('median_cosine'))}, min {_fmt(control.get('min_cosine'))}",
        ]
    if interference.get("core_overlap"):  # core_merge: the second interference diagnostic
        lines += ["", "## Core overlap (|C_i & C_j| / min, RMS over modules)", "", "| pair | rms overlap |"]
        lines += ["|---|---|"] + [
            f"| {inputs[p['i']].label} / {inputs[p['j']].label} | {p['rms_overlap']:.4f} |"
            for p in interference["core_overlap"]
        ]
    if metrics:
        lines += [
            "",
            "## Metrics vs parents",
            "",
            "| evaluation | result | " + " | ".join(parents) + " |",
            "|---|---|" + "---|" * len(parents),
        ]
        for name, value in metrics.items():
            lines.append(
                f"| {name} | {value:.6g} | "
                + " | ".join(f"{p.get(name, float('nan')):.6g}" for p in parents.values())
                + " |"
            )
    if search:
        lines += [
            "",
            f"Search ({search.strategy}): {len(search.candidates)} candidates, winner #{search.winner}"
            + (f" ({chosen.method}, scale {chosen.scale:g})" if chosen is not None and chosen.method else ""),
        ]
    lines += ["", "**Gate failed**: " + "; ".join(failures) if failures else ""]
    create_markdown_artifact(
        "\n".join(lines), key=f"compose-{_slug(spec.name)}", description="composition summary"
    )
    rows = [
        {"evaluation": n, "result": v, **{p: vals.get(n) for p, vals in parents.items()}}
        for n, v in metrics.items()
    ]
    if rows:
        create_table_artifact(rows, key=f"metrics-{_slug(spec.name)}", description="result vs parents")


def link(name: str, version: int, sha256: str) -> None:
    create_markdown_artifact(
        f"Registered **{name}@{version}** (`sha256:{sha256}`)",
        key=f"output-{_slug(name)}",
        description="registered output",
    )
