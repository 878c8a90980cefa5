"""Hugging Face model card stored beside every adapter version.

The card is README.md, as on the Hugging Face Hub, unless the uploaded folder brought a README.md of
its own: that one is the user's, kept byte-identical, and the registry's card goes to MODEL_CARD.md.
"""

from __future__ import annotations

from typing import Any

import yaml

from registry import __version__

CARD_FILE = "README.md"
GENERATED_CARD_FILE = "MODEL_CARD.md"


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
    method: str | None = None,
) -> str:
    """`parents`: [{name, version, sha256, weight}, optional operator] for composed adapters, shown
    as lineage; `method` is the composition method, the operator of every edge without its own.

    `version` is usually None: files are uploaded before the catalog assigns the number."""
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
    label = f"{full_name}@{version}, " if version is not None else ""
    lines += [
        f"- PEM type: `{pem_type}`",
        f"- Base model: `{base_model}`",
        f"- Digest: {label}`sha256:{sha256}` (of adapter_model.safetensors)",
        f"- Registry: pem-registry {__version__}",
        "",
        "## Lineage",
        "",
    ]
    if parents:
        lines += ["| parent | version | method | weight | sha256 |", "|---|---|---|---|---|"]
        lines += [
            f"| {p['name']} | {p['version']} | {p.get('operator') or method or '-'} | {p['weight']:+g} "
            f"| `{p['sha256'][:12]}` |"
            for p in parents
        ]
    else:
        lines.append("Registered from files (no parents).")
    if metrics:
        lines += ["", "## Evaluations", "", "| name | value |", "|---|---|"]
        lines += [f"| {k} | {v:.6g} |" for k, v in sorted(metrics.items())]
    lines += ["", "Load with `PeftModel.from_pretrained(base_model, path)`.", ""]
    return "\n".join(lines)
