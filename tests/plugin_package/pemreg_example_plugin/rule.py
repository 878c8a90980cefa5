"""The math: one input's dense delta at a time, as every dense rule of pemreg."""

from __future__ import annotations

from typing import Any


def scaled_sum(deltas: Any, entries: Any, params: Any, path: str, norms: Any) -> tuple[Any, dict[str, Any]]:
    total = None
    for entry, delta in zip(entries, deltas(), strict=True):
        term = entry.weight * delta
        total = term if total is None else total + term
    return params.value("factor") * total, {"factor": params.value("factor")}
