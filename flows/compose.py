"""The `compose` flow: fetch -> interference -> compose -> evaluate -> gate -> upload -> register.

The flow reads as its steps; every state change is a call into the run lifecycle
(`registry.service.compositions.runs`): running (with a heartbeat while it works), then succeeded (the
registration
transaction), rejected (a gate), or failed (any exception, message kept on the row). The flow holds no
catalog sessions of its own.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import deployment, flow_run

from registry.evaluation.gates import check_gates
from registry.service import Registry
from registry.service.catalog.evaluations import cached_value
from registry.service.catalog.evaluations import record as record_evaluation
from registry.service.compositions import reads as comps
from registry.service.compositions import runs
from registry.service.compositions.inputs import ResolvedInput, base_model_folder, cache_dir
from registry.service.compositions.records import (
    CompositionProvenance,
    EvaluationRecord,
    InputRecord,
    RunInfo,
)
from registry.service.compositions.status import IllegalTransition
from registry.spec import CompositionSpec

from . import artifacts, device
from .context import current_registry
from .decoding import (
    ENSEMBLE_FORMULA,
    calibrate_task,
    compare_decoding,
    ensemble_evaluate_task,
    publish_comparison,
    register_ensemble_task,
)
from .search import run_search
from .tasks import (
    compose_task,
    datasets_for,
    evaluate_task,
    fetch_input_task,
    interference_task,
    merge_task,
    register_merged_task,
    register_task,
)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _parent_metrics(
    reg: Registry,
    comp_id: str,
    base: str,
    inputs: list[ResolvedInput],
    folders: list[str],
    requests: list[Any],
) -> dict[str, dict[str, float]]:
    """Each parent on the same datasets; cached per (digest, metric, dataset digest) in the catalog."""
    out: dict[str, dict[str, float]] = {}
    for item, folder in zip(inputs, folders, strict=True):
        values: dict[str, float] = {}
        missing = []
        for req in requests:
            hit = cached_value(reg, item.label, req.metric, req.dataset.sha256)
            if hit is None:
                missing.append(req)
            else:
                values[req.name] = hit
        if missing:
            fresh = evaluate_task(base, folder, missing)
            for req in missing:
                record_evaluation(
                    reg,
                    item.label,
                    name=req.name,
                    metric=req.metric,
                    dataset_uri=req.dataset.uri,
                    dataset_sha256=req.dataset.sha256,
                    value=fresh[req.name],
                    composition_id=comp_id,
                )
            values.update(fresh)
        out[item.name] = values
    return out


def begin_run(
    reg: Registry, spec: CompositionSpec, composition_id: str | None, trigger: str
) -> comps.CompositionView:
    """The run this flow works on. A scheduled deployment run has none yet: it starts one here, acting
    as the principal who stored the spec with its access now (a refusal is kept as a failed run saying
    why); a direct call of the flow is a submission by this process's principal. A cache hit ends the
    run at once."""
    if composition_id is not None:
        return comps.get(reg, composition_id)
    if trigger == "schedule":  # the row names the scheduled flow run, even when it is a cache hit
        asked_by = str(flow_run.id) if flow_run.id else None
        stored = runs.owner_of(reg, spec)
        return runs.begin(reg, spec, trigger, stored.principal, stored.api_key_id, flow_run_id=asked_by)
    return runs.begin(reg, spec, trigger, record_refusal=False)


@flow(name="compose", log_prints=True)
def compose_flow(
    spec: dict[str, Any], composition_id: str | None = None, trigger: str = "cli"
) -> dict[str, Any]:
    reg = current_registry()
    parsed = CompositionSpec.model_validate(spec)
    comp = begin_run(reg, parsed, composition_id, trigger)
    if comp.status.terminal:  # a cache hit, a refused start, or a run reconcile already ended
        return comp.model_dump(mode="json")
    work = cache_dir(reg, "work", comp.id)
    started = _now()
    holds: list[dict[str, Any]] = []
    try:  # the run's admission, made again as its principal now (a refusal ends it failed)
        comp = runs.mark_running(reg, comp.id, str(flow_run.id) if flow_run.id else None)
    except IllegalTransition:  # refused, or reconcile ended the run before this flow run took it
        ended = comps.get(reg, comp.id)
        get_run_logger().warning("composition %s is already %s; not run", ended.id, ended.status.value)
        shutil.rmtree(work, ignore_errors=True)
        return ended.model_dump(mode="json")
    try:
        acting = runs.acting_for(reg, comp.id)  # every step reads and records as who stored the spec
        with runs.heartbeating(reg, comp.id), device.recording(reg.settings.gpu_limit) as holds:
            return _run(acting, parsed, comp, work, started)
    except Exception as exc:
        runs.fail_if_active(reg, comp.id, runs.one_line(exc))
        raise
    finally:
        if holds:
            try:
                runs.record(reg, comp.id, timings={"device": holds})
            except Exception as exc:  # noqa: BLE001 - a lost measurement must not mask the run's outcome
                get_run_logger().warning("could not record device timings: %s", runs.one_line(exc))
        shutil.rmtree(work, ignore_errors=True)


def _run(
    reg: Registry, spec: CompositionSpec, comp: comps.CompositionView, work: Path, started: str
) -> dict[str, Any]:
    log = get_run_logger()
    inputs = [ResolvedInput(**i.model_dump(exclude={"applied_weight"})) for i in comp.inputs]
    folders = [f.result() for f in [fetch_input_task.submit(reg, i) for i in inputs]]
    names = [i.label for i in inputs]
    weights = [i.weight for i in inputs]
    interference = interference_task(
        folders,
        weights,
        names,
        reg.settings.interference_threshold,
        spec.method,
        reg.settings.linear_cross_term_threshold,
        spec.density,  # the core overlap's fraction; none without one (see compose/overlap.py)
    )
    for warning in interference.get("warnings", []):
        log.warning(warning)
    runs.record(reg, comp.id, interference=interference)

    requests = datasets_for(reg, spec, comp.trigger)
    base = base_model_folder(reg, inputs) if requests else ""
    parents = _parent_metrics(reg, comp.id, base, inputs, folders, requests) if requests else {}
    metric_of = {r.name: r.metric for r in requests}
    search_record = None
    method = spec.method
    if spec.search is not None:

        def feasible(candidate_metrics: dict[str, float]) -> bool:
            return not check_gates(spec.gate, candidate_metrics, metric_of, parents)

        outcome = run_search(spec, inputs, folders, base, requests, work, feasible)
        search_record, winner_folder, engine = outcome.record, outcome.folder, outcome.engine
        # the row, lineage, card and provenance name the method the winner was composed with
        method = outcome.method
        runs.record(reg, comp.id, search=search_record.model_dump(mode="json"), method=method)
        weights = [search_record.applied(i.name, i.weight) for i in inputs]
        inputs = [ResolvedInput(**{**i.to_dict(), "weight": w}) for i, w in zip(inputs, weights, strict=True)]
        out = Path(winner_folder)
        metrics = search_record.winner_metrics
    elif spec.output.kind == "ensemble":  # decoding-time composition: no weights
        out, engine = work / "result", {"name": "ensemble", "formula": ENSEMBLE_FORMULA}
        metrics = ensemble_evaluate_task(base, folders, weights, requests) if requests else {}
    else:
        out = work / "result"
        calibration = (  # core_merge importance needs the base's activation norms
            calibrate_task(
                reg,
                spec,
                base or base_model_folder(reg, inputs),
                folders,
                str(work / "calib.safetensors"),
                comp.trigger,
            )
            if spec.core_criterion == "importance"
            else None
        )
        engine = compose_task(folders, weights, spec, str(out), calibration)
        if "core_overlap" in engine["summary"]:  # core overlap beside the RMS cosine
            interference = {**interference, "core_overlap": engine["summary"]["core_overlap"]}
            runs.record(reg, comp.id, interference=interference)
        metrics = evaluate_task(base, str(out), requests) if requests else {}
    control = engine.get("summary", {}).get("control")
    if control is not None:  # the result beside the exact weighted sum: shown with the interference
        interference = {**interference, "control": {"method": method, **control}}
        runs.record(reg, comp.id, interference=interference)
    if spec.compare_decoding and requests:  # weight space vs decoding time
        interference = {
            **interference,
            "decoding": compare_decoding(base, folders, weights, requests, metrics),
        }
        runs.record(reg, comp.id, interference=interference)
        publish_comparison(spec, interference["decoding"])

    failures = check_gates(spec.gate, metrics, metric_of, parents)
    artifacts.publish(spec, inputs, interference, metrics, parents, failures, search_record)
    if failures:
        log.warning("gate failed: %s", "; ".join(failures))
        return runs.reject(reg, comp.id, metrics, failures).model_dump(mode="json")

    evaluations = [
        EvaluationRecord(
            name=r.name,
            metric=r.metric,
            dataset=r.dataset.uri,
            dataset_sha256=r.dataset.sha256,
            value=metrics[r.name],
        )
        for r in requests
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
        method={"name": method, "provider": method_provider(method), **engine},
        interference=interference,
        evaluations=evaluations,
        parent_evaluations=parents,
        search=search_record,
        run=RunInfo(
            flow_run_id=str(flow_run.id) if flow_run.id else None,
            deployment=deployment.name if deployment.id else None,
            trigger=comp.trigger,
            principal=comp.principal,
            started=started,
            finished=_now(),
            attempt=comp.attempt,
        ),
    )
    if spec.output.kind == "ensemble":  # decoding-time composition: register the recipe, not weights
        return register_ensemble_task(reg, comp, spec, inputs, metrics, provenance.to_dict()).model_dump(
            mode="json"
        )
    merged = spec.output.kind == "merged_model"
    merged_files = (
        merge_task(str(out), base or base_model_folder(reg, inputs), str(work / "merged")) if merged else {}
    )
    registered = spec if method == spec.method else spec.model_copy(update={"method": method})
    done = register_task(
        reg, comp, str(out), registered, inputs, evaluations, metrics, provenance, not merged
    )
    assert done.output is not None
    artifacts.link(done.output.name, done.output.version, done.output.sha256)
    if merged:  # the run ends `succeeded` with the merged model's row, not before
        source = f"{done.output.name}@{done.output.version}"
        digest = register_merged_task(reg, comp.id, source, str(work / "merged"), merged_files)
        log.info("merged model of %s: sha256:%s", source, digest)
        done = comps.get(reg, comp.id)
    return done.model_dump(mode="json")


def method_provider(name: str) -> str:
    """Who provides the method: `pemreg`, or a plugin's distribution and version."""
    from registry.compose.methods import get_method

    method = get_method(name)
    return method.provider if method is not None else "unknown"
