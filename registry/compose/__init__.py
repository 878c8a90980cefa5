"""The composition engine: pure tensors/files in and out (no catalog, DB, network or Prefect).

Names load on first use, so `registry.compose.methods` (the method table) imports without torch.

Public API:
    compose(adapters: Sequence[PemAdapter], weights: Sequence[float], method: str = "linear", *,
            rank: int | None = None, density: float | None = None, majority_sign: str = "total",
            seed: int = 0, threads: int | None = 1, check_base_model: bool = True) -> CompositionResult
        CompositionResult.adapter (PemAdapter, write with registry.pem.write_adapter),
        .modules {path: {"rank", "retained_energy"?}}, .summary, .params, .report() -> dict
    compose_files(folders, weights, out, method="linear", **same options) -> CompositionResult
        the same composition (the same loop, engine.run) streamed from adapter folders to the
        folder `out`, one module at a time (memory flat in the number and size of inputs); .adapter
        holds shape-only tensors. The product (flows/tasks.py) composes through this one.
    interference_report(adapters, weights=None, *, threshold=0.3, names=None,
                        check_base_model=True, method=None, cross_term_threshold=0.25)
                        -> InterferenceReport
        InterferenceReport.pairs [PairInterference(i, j, rms_cosine, mean_cosine, max_abs_cosine,
        modules, linear_cross_term_error)], .linear_cross_term_error (all inputs),
        .cross_term_threshold, .warnings [str], .to_dict()
    interference_files(folders, weights=None, **same options) -> InterferenceReport
        the same report read from adapter folders one module at a time
    merge_into_base(base_folder, adapter, out_folder) -> dict[file name, sha256]
    METHODS: tuple of method names (the method table, compose/methods.py); check_adapters /
    check_params for dry runs.
Errors: registry.errors.InvalidInput (bad parameters, empty or all-zero weights) and
IncompatibleAdapters (types, base models, shapes, ranks under linear, NaN/Inf, DoRA, modules_to_save).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from registry.compose.base import METHODS, MethodParams
    from registry.compose.checks import check_adapters, check_params
    from registry.compose.engine import CompositionResult, compose
    from registry.compose.interference import (
        InterferenceReport,
        PairInterference,
        interference_files,
        interference_report,
    )
    from registry.compose.merged import merge_into_base
    from registry.compose.stream import compose_files

_WHERE = {
    "METHODS": "base",
    "MethodParams": "base",
    "check_adapters": "checks",
    "check_params": "checks",
    "CompositionResult": "engine",
    "compose": "engine",
    "InterferenceReport": "interference",
    "PairInterference": "interference",
    "interference_files": "interference",
    "interference_report": "interference",
    "merge_into_base": "merged",
    "compose_files": "stream",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'registry.compose' has no attribute {name!r}")
    return getattr(importlib.import_module(f"registry.compose.{_WHERE[name]}"), name)


__all__ = [
    "METHODS",
    "CompositionResult",
    "InterferenceReport",
    "MethodParams",
    "PairInterference",
    "check_adapters",
    "check_params",
    "compose",
    "compose_files",
    "interference_files",
    "interference_report",
    "merge_into_base",
]
