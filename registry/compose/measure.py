"""Compose without keeping the result: the controls of a method on adapter folders (a dry run's
"what would this method do to the sum"), streamed one module at a time like `compose_files`."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from registry.compose.base import MethodParams
from registry.compose.device import DEFAULT_CPU_THREADS, torch_threads
from registry.compose.engine import ModuleObserver, run
from registry.pem.lazy import open_adapters


class DiscardSink:
    """Each output module is measured by the engine, then dropped: memory stays one module."""

    def __init__(self) -> None:
        self.planned: Mapping[str, Any] = {}

    def open(self, kind: Any, planned: Mapping[str, Any]) -> None:
        self.planned = planned

    def write(self, path: str, module: Any) -> None:
        pass

    def close(self, config: dict[str, Any]) -> Mapping[str, Any]:
        return self.planned  # shape-only

    def abort(self) -> None:
        pass


def measure_files(
    folders: Sequence[str | os.PathLike[str]],
    weights: Sequence[float],
    params: MethodParams,
    *,
    threads: int | None = DEFAULT_CPU_THREADS,
    observers: Sequence[ModuleObserver] = (),
) -> dict[str, Any]:
    """The composition's control summary (compose/controls.py) and its per-module controls;
    `observers` measure the inputs in the same pass (engine.run)."""
    with torch_threads(threads), open_adapters(list(folders)) as lazies:
        result = run(lazies, weights, params, False, DiscardSink(), observers=observers)
    return {
        "summary": result.summary.get("control", {}),
        "modules": {path: report["control"] for path, report in result.modules.items()},
        "params": result.params,
    }
