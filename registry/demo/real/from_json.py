"""The report's tables and checklist regenerated from a run's `results.json` alone (no model, no
registry): what docs/demo-real.md's measured sections are pasted from.

    python -m registry.demo.real.from_json <out>/results.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from . import pairs as pairs_mod
from .claims import claims, domain_of
from .plan import PRIMARY
from .report import (
    RealResult,
    RealRow,
    diagnostics_table,
    method_search_table,
    sizes_table,
    table,
    task_table,
)


def load(path: Path) -> RealResult:
    data = json.loads(path.read_text())
    rows = [RealRow(**{**r, "inputs": [(ref, w) for ref, w in r["inputs"]]}) for r in data["rows"]]
    return RealResult(
        out_dir=Path(data["out_dir"]),
        base_ref=data["base_model"],
        base_folder=Path(data["base_folder"]),
        doc_names=data["doc_names"],
        tokens=data["tokens"],
        item_names=data.get("item_names", {}),
        rows=rows,
        interference=data["interference"],
        style=data["style"],
        lineage_root=data["lineage_root"],
        seconds=data["seconds"],
        threads=data["threads"],
        precision=data["precision"],
        quick=data["quick"],
        search=data["search"],
        transfer_search=data.get("transfer_search", []),
        method_search=data.get("method_search", []),
        sizes=data.get("sizes", {}),
        controls=data.get("controls", []),
        diagnostics=data.get("diagnostics", []),
    )


def markdown(result: RealResult) -> list[str]:
    built = pairs_mod.build(result.controls, result.rows, domain_of)
    return [
        "Primary claims (stated before the run):",
        "",
        *[f"- {k}: {v}" for k, v in PRIMARY],
        "",
        *sizes_table(result.sizes),
        "",
        *table(result),
        "",
        *task_table(result),
        "",
        *pairs_mod.sweep_table(built),
        "",
        *pairs_mod.tuned_table(built),
        "",
        *pairs_mod.vs_tuned_sum_table(built),
        "",
        *(method_search_table(result) if result.method_search else []),
        "",
        *diagnostics_table(result),
        "",
        *[f"- {c.line}" for c in claims(result)],
    ]


if __name__ == "__main__":
    print("\n".join(markdown(load(Path(sys.argv[1])))))
