"""The three things a compose run can do between its plan and its finish, one function each.

Each takes the run's plan (registry/service/compositions/plan.py) and the parents' metrics and returns
an `Outcome`: what was made (a composed adapter folder, or none for an ensemble), with which method
and weights, its metrics and the interference report. `flows/finish.py` turns any outcome into the
run's end (gates, provenance, registration), so none of them registers anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import get_run_logger

from registry.evaluation.gates import check_gates
from registry.service import Registry
from registry.service.compositions import runs
from registry.service.compositions.inputs import ResolvedInput
from registry.service.compositions.plan import RunPlan, Strategy
from registry.views import SearchRecord

from .decoding import ENSEMBLE_FORMULA, calibrate_task, ensemble_evaluate_task
from .search import run_search
from .tasks import InterferenceSettings, compose_measured_task, evaluate_task, interference_task

Parents = dict[str, dict[str, float]]  # input name -> evaluation name -> value


@dataclass(frozen=True)
class Outcome:
    folder: Path | None  # the composed adapter; None for a decoding-time ensemble
    method: str  # the method the result was composed with (a search's winner's)
    engine: dict[str, Any]  # the engine's report (CompositionResult.report()), or the ensemble's formula
    metrics: dict[str, float]  # the result on the spec's evaluations
    inputs: list[ResolvedInput]  # with the weights as applied (a search's winner's)
    interference: dict[str, Any]  # the report, with what the strategy measured beside it
    search: SearchRecord | None = field(default=None)


def interference_settings(reg: Registry, plan: RunPlan) -> InterferenceSettings:
    return InterferenceSettings(
        names=plan.names,
        threshold=reg.settings.interference_threshold,
        method=plan.spec.method,
        cross_term_threshold=reg.settings.linear_cross_term_threshold,
        core_density=plan.spec.density,  # the core overlap's fraction; none without one
    )


def _recorded(reg: Registry, plan: RunPlan, interference: dict[str, Any]) -> dict[str, Any]:
    """Log the report's warnings and keep it on the run row (the UI shows it while the run works)."""
    for warning in interference.get("warnings", []):
        get_run_logger().warning(warning)
    runs.record(reg, plan.composition.id, interference=interference)
    return interference


def weight_merge(reg: Registry, plan: RunPlan, parents: Parents) -> Outcome:
    """The spec's method, streamed: composition, interference report and controls in one pass."""
    spec, folders, out = plan.spec, list(plan.folders), plan.work / "result"
    calibration = (  # core_merge importance needs the base's activation norms
        calibrate_task(
            reg, spec, plan.base, folders, str(plan.work / "calib.safetensors"), plan.composition.trigger
        )
        if spec.core_criterion == "importance"
        else None
    )
    measured = compose_measured_task(
        folders, plan.weights, spec, str(out), interference_settings(reg, plan), calibration
    )
    interference = measured.interference
    if "core_overlap" in measured.engine["summary"]:  # core_merge's own overlap beside the RMS cosine
        interference = {**interference, "core_overlap": measured.engine["summary"]["core_overlap"]}
    _recorded(reg, plan, interference)
    metrics = evaluate_task(plan.base, str(out), list(plan.requests)) if plan.requests else {}
    return Outcome(out, spec.method, measured.engine, metrics, list(plan.inputs), interference)


def search(reg: Registry, plan: RunPlan, parents: Parents) -> Outcome:
    """Every candidate of `search:` composed and evaluated; the best one that passes the gates."""
    spec = plan.spec
    interference = _recorded(
        reg, plan, interference_task(list(plan.folders), plan.weights, interference_settings(reg, plan))
    )

    def feasible(candidate_metrics: dict[str, float]) -> bool:
        return not check_gates(spec.gate, candidate_metrics, plan.metric_of, parents)

    inputs = list(plan.inputs)
    found = run_search(spec, inputs, list(plan.folders), plan.base, list(plan.requests), plan.work, feasible)
    record = found.record
    # the row, lineage, card and provenance name the method the winner was composed with
    runs.record(reg, plan.composition.id, search=record.model_dump(mode="json"), method=found.method)
    applied = [ResolvedInput(**{**i.to_dict(), "weight": record.applied(i.name, i.weight)}) for i in inputs]
    return Outcome(
        Path(found.folder), found.method, found.engine, record.winner_metrics, applied, interference, record
    )


def ensemble(reg: Registry, plan: RunPlan, parents: Parents) -> Outcome:
    """Decoding time: the inputs' weighted logits, evaluated; no weights composed."""
    interference = _recorded(
        reg, plan, interference_task(list(plan.folders), plan.weights, interference_settings(reg, plan))
    )
    metrics = (
        ensemble_evaluate_task(plan.base, list(plan.folders), plan.weights, list(plan.requests))
        if plan.requests
        else {}
    )
    engine = {"name": "ensemble", "formula": ENSEMBLE_FORMULA}
    return Outcome(None, plan.spec.method, engine, metrics, list(plan.inputs), interference)


STRATEGIES: dict[Strategy, Callable[[Registry, RunPlan, Parents], Outcome]] = {
    Strategy.WEIGHT_MERGE: weight_merge,
    Strategy.SEARCH: search,
    Strategy.ENSEMBLE: ensemble,
}
