"""Prefect tasks of the compose flow. They pass digests, paths and small JSON, never tensors."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, TypedDict

from prefect import task
from prefect.cache_policies import NO_CACHE, CachePolicy

from registry.compose import compose_files, interference_files
from registry.compose.engine import ModuleObserver
from registry.compose.interference import DEFAULT_CROSS_TERM_THRESHOLD, InterferenceMeter
from registry.evaluation import EvalRequest, Evaluator
from registry.evaluation.calibration import load_norms
from registry.pem import read_adapter
from registry.service import Registry
from registry.service.compositions.inputs import ResolvedInput, fetch_input
from registry.service.compositions.output import register_output
from registry.service.compositions.reads import CompositionView
from registry.service.compositions.records import CompositionProvenance, EvaluationRecord
from registry.spec import CompositionSpec

from .device import device_slot
from .retry import RETRYING


# Our cache is the catalog (cache key -> registered version), so Prefect's own is off.
class TaskOptions(TypedDict):
    """`@task` keyword arguments, typed so that `**TASK` matches Prefect's `task` overloads."""

    cache_policy: CachePolicy
    persist_result: bool


TASK: TaskOptions = {"cache_policy": NO_CACHE, "persist_result": False}


@task(name="fetch-input", **TASK, **RETRYING)
def fetch_input_task(reg: Registry, item: ResolvedInput) -> str:
    return str(fetch_input(reg, item))


@dataclass(frozen=True)
class InterferenceSettings:
    """What the interference report measures and warns about (the registry's thresholds)."""

    names: list[str]
    threshold: float
    method: str | None = None
    cross_term_threshold: float = DEFAULT_CROSS_TERM_THRESHOLD
    core_density: float | None = None  # the core overlap's fraction; none without one (compose/overlap.py)


@task(name="interference", **TASK)
def interference_task(folders: list[str], weights: list[float], measure: InterferenceSettings) -> dict:
    """The interference report on its own pass (a search or an ensemble composes no single merge)."""
    return interference_files(  # one module of every input at a time
        folders,
        weights,
        threshold=measure.threshold,
        names=measure.names,
        method=measure.method,
        cross_term_threshold=measure.cross_term_threshold,
        core_density=measure.core_density,
    ).to_dict()


@dataclass(frozen=True)
class MeasuredComposition:
    engine: dict[str, Any]  # CompositionResult.report()
    interference: dict[str, Any]  # InterferenceReport.to_dict()


@task(name="compose", **TASK)
def compose_measured_task(
    folders: list[str],
    weights: list[float],
    spec: CompositionSpec,
    out: str,
    measure: InterferenceSettings,
    calibration: str | None = None,
) -> MeasuredComposition:
    """A weight merge and its interference report in one streamed pass: each input read once."""
    meter = InterferenceMeter(weights, measure.core_density)
    engine = _compose(folders, weights, spec, out, calibration, 1.0, (meter,))
    report = meter.report(measure.threshold, measure.names, measure.method, measure.cross_term_threshold)
    return MeasuredComposition(engine, report.to_dict())


@task(name="compose", **TASK)
def compose_task(
    folders: list[str],
    weights: list[float],
    spec: CompositionSpec,
    out: str,
    calibration: str | None = None,
    scale: float = 1.0,  # a search candidate's `search.scale`
) -> dict:
    return _compose(folders, weights, spec, out, calibration, scale)


def _compose(
    folders: list[str],
    weights: list[float],
    spec: CompositionSpec,
    out: str,
    calibration: str | None,
    scale: float,
    observers: tuple[ModuleObserver, ...] = (),
) -> dict[str, Any]:
    with device_slot("compose"):
        # streamed: one module of every input at a time, written to `out` as it is composed
        result = compose_files(
            folders,
            weights,
            out,
            spec.method,
            rank=spec.rank,
            density=spec.density,
            majority_sign=spec.majority_sign,
            seed=spec.seed,
            # core_merge criterion; `calibration` = norms file from flows/decoding.calibrate_task
            core_criterion=spec.core_criterion or "magnitude",
            activation_norms=load_norms(Path(calibration)) if calibration else None,
            method_params=spec.params,
            scale=scale,
            observers=observers,
        )
    return result.report()


@task(name="register", **TASK, **RETRYING)
def register_task(
    reg: Registry,
    comp: CompositionView,
    out: str,
    spec: CompositionSpec,
    inputs: list[ResolvedInput],
    evaluations: list[EvaluationRecord],
    metrics: dict[str, float],
    provenance: CompositionProvenance,
    succeed: bool = True,
) -> CompositionView:
    return register_output(
        reg,
        comp,
        Path(out),
        spec,
        inputs,
        evaluations=evaluations,
        metrics=metrics,
        provenance=provenance,
        succeed=succeed,
    )


@task(name="merge-into-base", **TASK)
def merge_task(adapter_folder: str, base_folder: str, out: str) -> dict[str, str]:
    """Base + composed delta as full weights in `out` (file name -> sha256); before anything is
    registered, so a merge that fails (a base it cannot load) registers nothing."""
    from registry.compose import merge_into_base

    return merge_into_base(base_folder, read_adapter(adapter_folder), out)


@task(name="register-merged", **TASK, **RETRYING)
def register_merged_task(
    reg: Registry, composition_id: str, source: str, out: str, files: dict[str, str]
) -> str:
    from registry.service.compositions.merged import register_merged

    return register_merged(reg, composition_id, source, Path(out), files)


_EVALUATOR_LOCK = threading.Lock()


@lru_cache(maxsize=2)
def _load_evaluator(base_folder: str) -> Evaluator:
    return Evaluator(Path(base_folder))


def _evaluator(base_folder: str) -> Evaluator:
    # Search candidates run on parallel task threads. Unguarded, two first calls both miss the cache and
    # load the model at once, and concurrent from_pretrained calls break each other (transformers'
    # init context is process-wide: "Cannot copy out of meta tensor"). One load, then shared.
    with _EVALUATOR_LOCK:
        return _load_evaluator(base_folder)


@task(name="evaluate", **TASK)
def evaluate_task(
    base_folder: str, adapter_folder: str | None, requests: list[EvalRequest]
) -> dict[str, float]:
    with device_slot("evaluate"):
        return _evaluator(base_folder).evaluate(Path(adapter_folder) if adapter_folder else None, requests)
