"""Hugging Face model card (README.md) stored beside every adapter version."""

from __future__ import annotations

from typing import Any

import yaml


def render_model_card(
    *,
    full_name: str,
    version: int | None,
    sha256: str,
    base_model: str,
    pem_type: str,
    task: str | None,
    tags: dict[str, str],
    description: str | None,
    relation: str = "adapter",
    parents: list[dict[str, Any]] | None = None,
    metrics: dict[str, Any] | None = None,
) -> str:
    """`parents`: [{name, version, sha256, weight}] for composed adapters; shown as lineage."""
    card_tags = ["peft", "pem-registry", pem_type, f"base_model:{relation}:{base_model}"]
    card_tags += [f"{k}:{v}" for k, v in sorted(tags.items())]
    if task:
        card_tags.append(task)
    front = {
        "base_model": base_model,
        "base_model_relation": relation,
        "library_name": "peft",
        "tags": card_tags,
    }
    lines = ["---", yaml.safe_dump(front, sort_keys=False).rstrip(), "---", "", f"# {full_name}", ""]
    if description:
        lines += [description, ""]
    label = f"version {version}" if version is not None else "unversioned"
    lines += [
        f"- PEM type: `{pem_type}`",
        f"- Base model: `{base_model}`",
        f"- Registry: {label}, `sha256:{sha256}` (digest of adapter_model.safetensors)",
        "",
        "## Lineage",
        "",
    ]
    if parents:
        lines += ["| parent | version | weight | sha256 |", "|---|---|---|---|"]
        lines += [
            f"| {p['name']} | {p['version']} | {p['weight']:+g} | `{p['sha256'][:12]}` |" for p in parents
        ]
    else:
        lines.append("Registered from files (no parents).")
    if metrics:
        lines += ["", "## Evaluations", "", "| name | value |", "|---|---|"]
        lines += [f"| {k} | {v:.6g} |" for k, v in sorted(metrics.items())]
    lines += ["", "Load with `PeftModel.from_pretrained(base_model, path)`.", ""]
    return "\n".join(lines)
