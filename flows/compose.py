"""The `compose` flow: resolve -> interference -> fetch -> compose -> evaluate -> gate -> upload -> register.

Any failure leaves the composition `failed` with the message; a failed gate leaves it `rejected` with
the metrics; nothing is registered in either case, and the registration itself is one transaction
after the upload.
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
from registry.service import compositions as comps
from registry.service.compose_inputs import ResolvedInput, cache_dir, fetch_base_model, resolve_inputs
from registry.service.evaluations import cached_value
from registry.service.evaluations import record as record_evaluation
from registry.spec import CompositionSpec

from . import artifacts
from .context import current_registry
from .decoding import (  # issue 14
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
    merged_task,
    register_task,
)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def prepare(reg: Registry, spec: CompositionSpec, trigger: str) -> comps.CompositionView:
    """Resolve inputs and create the `pending` record (what the CLI/API do before submitting)."""
    return comps.create(reg, spec, resolve_inputs(reg, spec), trigger)


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


def _base_folder(reg: Registry, inputs: list[ResolvedInput]) -> str:
    from registry.catalog import models as m
    from registry.service.base_models import require_base_model

    with reg.sessions() as session:
        base: m.BaseModel = require_base_model(session, inputs[0].base_model)
        return str(fetch_base_model(reg, base.source, f"{base.name}@{base.revision}"))


@flow(name="compose", log_prints=True)
def compose_flow(
    spec: dict[str, Any], composition_id: str | None = None, trigger: str = "cli"
) -> dict[str, Any]:
    reg = current_registry()
    parsed = CompositionSpec.model_validate(spec)
    comp = comps.get(reg, composition_id) if composition_id else prepare(reg, parsed, trigger)
    work = cache_dir(reg, "work", comp.id)
    started = _now()
    try:
        comp = comps.update(
            reg, comp.id, status="running", flow_run_id=str(flow_run.id) if flow_run.id else None
        )
        return _run(reg, parsed, comp, work, started)
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}" if not str(exc).strip() else str(exc)
        comps.update(reg, comp.id, status="failed", error=message.splitlines()[0][:2000])
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(reg: Registry, spec: CompositionSpec, comp: comps.CompositionView, work: Path, started: str) -> dict:
    log = get_run_logger()
    inputs = [ResolvedInput(**i) for i in comp.inputs]
    cached = comps.find_cached(reg, comp.cache_key or "", exclude=comp.id)
    if cached is not None and cached.output is not None:
        log.info(
            "cache hit: composition %s already produced %s@%s",
            comp.cache_key,
            cached.output.name,
            cached.output.version,
        )
        from registry.service.resolve import resolve_version

        with reg.sessions() as session:
            version_id = resolve_version(session, f"{cached.output.name}@{cached.output.version}").id
        done = comps.update(
            reg,
            comp.id,
            status="succeeded",
            cache_hit=True,
            output_version_id=version_id,
            metrics=cached.metrics,
            interference=cached.interference,
        )
        return done.model_dump(mode="json")

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
    )
    for warning in interference.get("warnings", []):
        log.warning(warning)
    comps.update(reg, comp.id, interference=interference)

    requests = datasets_for(reg, spec)
    base = _base_folder(reg, inputs) if requests else ""
    parents = _parent_metrics(reg, comp.id, base, inputs, folders, requests) if requests else {}
    metric_of = {r.name: r.metric for r in requests}
    search_record = None
    if spec.search is not None:

        def feasible(candidate_metrics: dict[str, float]) -> bool:
            return not check_gates(spec.gate, candidate_metrics, metric_of, parents)

        chosen, search_record = run_search(spec, inputs, folders, base, requests, work, feasible)
        weights = [chosen.get(i.name, i.weight) for i in inputs]
        inputs = [ResolvedInput(**{**i.to_dict(), "weight": w}) for i, w in zip(inputs, weights, strict=True)]
        out = Path(search_record["winner_folder"])
        engine = search_record["winner_engine"]
        metrics = search_record["winner_metrics"]
    elif spec.output.kind == "ensemble":  # issue 14 hook: decoding-time composition, no weights
        out, engine = work / "result", {"name": "ensemble", "formula": ENSEMBLE_FORMULA}
        metrics = ensemble_evaluate_task(base, folders, weights, requests) if requests else {}
    else:
        out = work / "result"
        calibration = (  # issue 14 hook: core_merge importance needs the base's activation norms
            calibrate_task(
                reg, spec, base or _base_folder(reg, inputs), folders, str(work / "calib.safetensors")
            )
            if spec.core_criterion == "importance"
            else None
        )
        engine = compose_task(folders, weights, spec, str(out), calibration)
        if "core_overlap" in engine["summary"]:  # issue 14 hook: core overlap beside the RMS cosine
            interference = {**interference, "core_overlap": engine["summary"]["core_overlap"]}
            comps.update(reg, comp.id, interference=interference)
        metrics = evaluate_task(base, str(out), requests) if requests else {}
    if spec.compare_decoding and requests:  # issue 14 hook: weight space vs decoding time
        interference = {
            **interference,
            "decoding": compare_decoding(base, folders, weights, requests, metrics),
        }
        comps.update(reg, comp.id, interference=interference)
        publish_comparison(spec, interference["decoding"])

    failures = check_gates(spec.gate, metrics, metric_of, parents)
    artifacts.publish(spec, inputs, interference, metrics, parents, failures, search_record)
    if failures:
        log.warning("gate failed: %s", "; ".join(failures))
        rejected = comps.update(
            reg, comp.id, status="rejected", metrics=metrics, error="gate failed: " + "; ".join(failures)
        )
        return rejected.model_dump(mode="json")

    evaluations = [
        {
            "name": r.name,
            "metric": r.metric,
            "dataset": r.dataset.uri,
            "dataset_sha256": r.dataset.sha256,
            "value": metrics[r.name],
        }
        for r in requests
    ]
    provenance = {
        "composition_id": comp.cache_key,
        "composition_run": comp.id,
        "spec": spec.canonical(),
        "inputs": [
            {"name": i.name, "version": i.version, "sha256": i.sha256, "weight": i.weight, "ref": i.ref}
            for i in inputs
        ],
        "base_model": inputs[0].base_model,
        "method": {"name": spec.method, **engine},
        "interference": interference,
        "evaluations": evaluations,
        "parent_evaluations": parents,
        "search": _without_paths(search_record),
        "run": {
            "flow_run_id": str(flow_run.id) if flow_run.id else None,
            "deployment": deployment.name if deployment.id else None,
            "trigger": comp.trigger,
            "principal": comp.principal,
            "started": started,
            "finished": _now(),
            "cache_hit": False,
        },
    }
    if spec.output.kind == "ensemble":  # issue 14 hook: register the recipe, not weights
        return register_ensemble_task(reg, comp, spec, inputs, metrics, provenance).model_dump(mode="json")
    done = register_task(reg, comp, str(out), spec, inputs, evaluations, metrics, provenance)
    assert done.output is not None
    artifacts.link(done.output.name, done.output.version, done.output.sha256)
    if spec.output.kind == "merged_model":
        source = f"{done.output.name}@{done.output.version}"
        digest = merged_task(
            reg, comp.id, source, str(out), base or _base_folder(reg, inputs), str(work / "merged")
        )
        log.info("merged model of %s: sha256:%s", source, digest)
    return done.model_dump(mode="json")


def _without_paths(record: dict[str, Any] | None) -> dict[str, Any] | None:
    if record is None:
        return None
    return {k: v for k, v in record.items() if k not in ("winner_folder", "winner_engine")}
