"""`recompose-stale`: rerun specs whose `latest`/alias inputs have moved, as subflows of this run."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from registry.service.compositions import reads as comps
from registry.spec import CompositionSpec

from .compose import begin_run, compose_flow
from .context import current_registry


@flow(name="recompose-stale", log_prints=True)
def recompose_stale_flow() -> list[dict[str, Any]]:
    reg = current_registry()
    log = get_run_logger()
    results: list[dict[str, Any]] = []
    for old in comps.find_outdated_outputs(reg):
        spec = CompositionSpec.model_validate(old.spec)
        log.info("recomposing %s (inputs moved since run %s)", spec.name, old.id)
        try:
            fresh = begin_run(reg, spec, None, "recompose", principal=old.principal)
            results.append(
                fresh.model_dump(mode="json")
                if fresh.status.terminal
                else compose_flow(spec.canonical(), fresh.id, "recompose")
            )
        except Exception as exc:  # one stale spec failing must not stop the others; its row says why
            log.error("recomposition of %s failed: %s", spec.name, exc)
            results.append({"name": spec.name, "status": "failed", "error": str(exc)})
    return results
