"""`recompose-stale`: rerun specs whose `latest`/alias inputs have moved, as subflows of this run.

Each recomposition acts as the principal who stored the spec (the same checks as its submission, made
again when it starts). A spec on a recompose cycle (stored before cycles were refused) is skipped, so
one parent change recomposes each descendant at most once.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from registry.service.compositions import reads as comps
from registry.service.compositions import runs
from registry.service.compositions.cycles import cycle_through
from registry.spec import CompositionSpec

from .compose import compose_flow
from .context import current_registry


@flow(name="recompose-stale", log_prints=True)
def recompose_stale_flow() -> list[dict[str, Any]]:
    reg = current_registry()
    log = get_run_logger()
    results: list[dict[str, Any]] = []
    for old in comps.find_outdated_outputs(reg):
        try:
            spec = CompositionSpec.model_validate(old.spec)
        except ValueError as exc:  # stored by an older version that accepted it: never rerun
            log.error("%s: stored spec no longer valid, not recomposed: %s", old.name, runs.one_line(exc))
            results.append({"name": old.name, "status": "skipped", "error": runs.one_line(exc)})
            continue
        cycle = cycle_through(reg, spec, stored=True)
        if cycle is not None:
            log.error("%s is on a recompose cycle (%s): not recomposed", spec.name, " -> ".join(cycle))
            results.append({"name": spec.name, "status": "skipped", "error": "recompose cycle"})
            continue
        log.info("recomposing %s (inputs moved since run %s)", spec.name, old.id)
        try:
            fresh = runs.begin_again(reg, spec, "recompose", old.id)
            results.append(
                fresh.model_dump(mode="json")
                if fresh.status.terminal
                else compose_flow(spec.canonical(), fresh.id, "recompose")
            )
        except Exception as exc:  # one stale spec failing must not stop the others; its row says why
            log.error("recomposition of %s failed: %s", spec.name, exc)
            results.append({"name": spec.name, "status": "failed", "error": str(exc)})
    return results
