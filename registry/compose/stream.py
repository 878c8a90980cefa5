"""`compose_files`: the engine on adapter folders, module by module, in memory flat in the inputs.

Same arithmetic as `compose` (the same `Composer.combine` per module, so results are identical),
but nothing is held beyond one module: the inputs' headers are read first (shapes only), every
check that needs no data runs on them, the output's header is planned from them, and then each
module is read from every input that has it, validated (parse + NaN/Inf, as `read_adapter`),
composed and appended to the output file. Peak memory is one module of every input plus its
output: ~40 MB for 32 rank-16 adapters of an 8B Llama, instead of the ~5 GB of reading them all.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from registry.compose.base import MethodParams
from registry.compose.device import DEFAULT_CPU_THREADS, torch_threads
from registry.compose.engine import CompositionResult, entries_at, finish, prepare
from registry.pem import PemAdapter
from registry.pem.base import dtype_name
from registry.pem.io import CONFIG_NAME, WEIGHTS_NAME
from registry.pem.lazy import IncrementalWriter, open_adapters


def compose_files(
    folders: Sequence[str | os.PathLike[str]],
    weights: Sequence[float],
    out: str | os.PathLike[str],
    method: str = "linear",
    *,
    rank: int | None = None,
    density: float | None = None,
    majority_sign: str = "total",
    seed: int = 0,
    threads: int | None = DEFAULT_CPU_THREADS,
    check_base_model: bool = True,
) -> CompositionResult:
    """Compose the adapter folders into the folder `out` (PEFT layout), streaming.

    Arguments and errors as `compose`. The result's `.adapter` holds the output config and
    shape-only ("meta") tensors (for `.metadata()`); the data is in `out`, written completely or
    not at all."""
    with torch_threads(threads), open_adapters(list(folders)) as lazies:
        started = time.perf_counter()
        skeletons = [lazy.skeleton for lazy in lazies]
        params = MethodParams(method, rank, density, majority_sign, seed)
        prep = prepare(skeletons, weights, params, check_base_model)
        shapes = [s.modules for s in skeletons]
        planned = {
            path: prep.composer.plan(path, entries_at(path, shapes, weights), prep.params, prep.out_dtype)
            for path in prep.paths
        }
        kind = skeletons[0].kind
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        writer = IncrementalWriter(folder / WEIGHTS_NAME, kind.to_tensors(planned), {"format": "pt"})
        reports: dict[str, dict[str, Any]] = {}
        try:
            for path in prep.paths:
                modules = [{path: lz.module(path)} if path in lz.keys else {} for lz in lazies]
                entries = entries_at(path, modules, weights)
                module, reports[path] = prep.composer.combine(
                    path, entries, prep.params, prep.device, prep.out_dtype
                )
                writer.write(kind.to_tensors({path: module}))
                del modules, entries, module  # before the next module is read: one module held
            config = prep.composer.output_config(skeletons, planned, prep.params)
            (folder / CONFIG_NAME).write_text(
                json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8"
            )
            writer.commit()
        except BaseException:
            writer.abort()
            raise
        adapter = PemAdapter(
            pem_type=skeletons[0].pem_type, config=config, modules=planned, dtype=dtype_name(prep.out_dtype)
        )
        return finish(adapter, prep, reports, started)
