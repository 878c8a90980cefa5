"""The one end of every compose run: controls and the decoding comparison beside the interference,
gates, the run's Prefect artifacts, provenance, and the registration its output kind asks for."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect import get_run_logger
from prefect.runtime import deployment, flow_run

from registry.compose.methods import get_method
from registry.evaluation.gates import check_gates
from registry.service import Registry
from registry.service.compositions import reads as comps
from registry.service.compositions import runs
from registry.service.compositions.plan import RunPlan
from registry.service.compositions.records import (
    CompositionProvenance,
    EvaluationRecord,
    InputRecord,
    RunInfo,
)

from . import artifacts
from .decoding import compare_decoding, publish_comparison, register_ensemble_task
from .strategies import Outcome, Parents
from .tasks import merge_task, register_merged_task, register_task


def now() -> str:
    return datetime.now(UTC).isoformat()


def finish(reg: Registry, plan: RunPlan, outcome: Outcome, parents: Parents) -> dict[str, Any]:
    """Rejected by a gate, or registered as the spec's output kind; the run's view as JSON."""
    spec, comp = plan.spec, plan.composition
    interference = _beside(reg, plan, outcome)
    metrics, inputs = outcome.metrics, outcome.inputs
    failures = check_gates(spec.gate, metrics, plan.metric_of, parents)
    artifacts.publish(spec, inputs, interference, metrics, parents, failures, outcome.search)
    if failures:
        get_run_logger().warning("gate failed: %s", "; ".join(failures))
        return runs.reject(reg, comp.id, metrics, failures).model_dump(mode="json")

    evaluations = [
        EvaluationRecord(
            name=r.name,
            metric=r.metric,
            dataset=r.dataset.uri,
            dataset_sha256=r.dataset.sha256,
            value=metrics[r.name],
        )
        for r in plan.requests
    ]
    provenance = CompositionProvenance(
        composition_id=comp.id,
        cache_key=comp.cache_key or "",
        spec=spec.canonical(),
        inputs=[
            InputRecord(name=i.name, version=i.version, sha256=i.sha256, weight=i.weight, ref=i.ref)
            for i in inputs
        ],
        base_model=inputs[0].base_model,
        method={"name": outcome.method, "provider": method_provider(outcome.method), **outcome.engine},
        interference=interference,
        evaluations=evaluations,
        parent_evaluations=parents,
        search=outcome.search,
        run=RunInfo(
            flow_run_id=str(flow_run.id) if flow_run.id else None,
            deployment=deployment.name if deployment.id else None,
            trigger=comp.trigger,
            principal=comp.principal,
            started=plan.started,
            finished=now(),
            attempt=comp.attempt,
        ),
    )
    if outcome.folder is None:  # decoding-time composition: register the recipe, not weights
        done = register_ensemble_task(reg, comp, spec, inputs, metrics, provenance.to_dict())
        return done.model_dump(mode="json")
    out = str(outcome.folder)
    merged = spec.output.kind == "merged_model"
    merged_files = merge_task(out, plan.base, str(plan.work / "merged")) if merged else {}
    registered = spec if outcome.method == spec.method else spec.model_copy(update={"method": outcome.method})
    done = register_task(reg, comp, out, registered, inputs, evaluations, metrics, provenance, not merged)
    assert done.output is not None
    artifacts.link(done.output.name, done.output.version, done.output.sha256)
    if merged:  # the run ends `succeeded` with the merged model's row, not before
        source = f"{done.output.name}@{done.output.version}"
        digest = register_merged_task(reg, comp.id, source, str(plan.work / "merged"), merged_files)
        get_run_logger().info("merged model of %s: sha256:%s", source, digest)
        done = comps.get(reg, comp.id)
    return done.model_dump(mode="json")


def _beside(reg: Registry, plan: RunPlan, outcome: Outcome) -> dict[str, Any]:
    """The interference report with the result's control (its norm and direction against the exact
    weighted sum) and, when the spec asks, weight space against decoding time; kept on the run row."""
    interference = outcome.interference
    control = outcome.engine.get("summary", {}).get("control")
    if control is not None:
        interference = {**interference, "control": {"method": outcome.method, **control}}
    if plan.spec.compare_decoding and plan.requests:
        weights = [i.weight for i in outcome.inputs]
        comparison = compare_decoding(
            plan.base, list(plan.folders), weights, list(plan.requests), outcome.metrics
        )
        interference = {**interference, "decoding": comparison}
        publish_comparison(plan.spec, comparison)
    if interference is not outcome.interference:
        runs.record(reg, plan.composition.id, interference=interference)
    return interference


def method_provider(name: str) -> str:
    """Who provides the method: `pemreg`, or a plugin's distribution and version."""
    method = get_method(name)
    return method.provider if method is not None else "unknown"
