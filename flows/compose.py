"""The `compose` flow: fetch -> plan -> parents' metrics -> strategy -> finish.

The flow reads as its steps. The inputs are fetched (one task each, digest-checked, cached), the
service builds the run's plan once (registry/service/compositions/plan.py), the plan's strategy runs
(flows/strategies.py: a streamed weight merge, a search, or a decoding-time ensemble) and one finish
step (flows/finish.py) gates, writes provenance and registers. Every state change is a call into the
run lifecycle (`registry.service.compositions.runs`): running (with a heartbeat while it works), then
succeeded (the registration transaction), rejected (a gate), or failed (any exception, message kept on
the row). The flow holds no catalog sessions of its own.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from registry.service import Registry
from registry.service.catalog.evaluations import cached_value
from registry.service.catalog.evaluations import record as record_evaluation
from registry.service.compositions import reads as comps
from registry.service.compositions import runs
from registry.service.compositions.inputs import cache_dir
from registry.service.compositions.plan import RunPlan, plan_run, run_inputs
from registry.service.compositions.status import IllegalTransition
from registry.spec import CompositionSpec

from . import device
from .context import current_registry
from .finish import finish, now
from .strategies import STRATEGIES, Parents
from .tasks import evaluate_task, fetch_input_task


def _parent_metrics(reg: Registry, plan: RunPlan) -> Parents:
    """Each parent on the same datasets; cached per (digest, metric, dataset digest) in the catalog."""
    out: Parents = {}
    comp_id, base = plan.composition.id, plan.base
    for item, folder in zip(plan.inputs, plan.folders, strict=True):
        values: dict[str, float] = {}
        missing = []
        for req in plan.requests:
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
    started = now()
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
    """Plan once, run the plan's strategy, finish (gates, provenance, registration)."""
    inputs = run_inputs(comp)
    folders = [f.result() for f in [fetch_input_task.submit(reg, i) for i in inputs]]
    plan = plan_run(reg, spec, comp, folders, work, started)
    parents = _parent_metrics(reg, plan) if plan.requests else {}
    outcome = STRATEGIES[plan.strategy](reg, plan, parents)
    return finish(reg, plan, outcome, parents)
