"""Prefect tasks for decoding-time composition and core_merge calibration, called from the compose flow.

Kept out of flows/tasks.py and flows/compose.py so the flow only gains a few delimited hook lines:
ensemble evaluation (output kind ensemble, compare_decoding), the calibration norms of core_merge
`importance`, and the weight-space vs decoding-time artifact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from registry.evaluation import EvalRequest, load_dataset
from registry.evaluation.calibration import activation_norms, save_norms
from registry.evaluation.decoding import FORMULA as ENSEMBLE_FORMULA
from registry.evaluation.decoding import interference_cost
from registry.pem.lazy import open_adapters
from registry.service import Registry
from registry.service.compositions.ensemble import register_ensemble
from registry.service.compositions.inputs import ResolvedInput
from registry.service.compositions.reads import CompositionView
from registry.service.context import open_store_for
from registry.sources import SourceAccess
from registry.spec import CompositionSpec

from .artifacts import _slug
from .device import device_slot
from .retry import RETRIES, RETRY_DELAYS, is_transient
from .tasks import _evaluator

__all__ = ["ENSEMBLE_FORMULA"]


@task(name="evaluate-decoding", cache_policy=NO_CACHE, persist_result=False)
def ensemble_evaluate_task(
    base_folder: str, folders: list[str], weights: list[float], requests: list[EvalRequest]
) -> dict[str, float]:
    """Metrics of base + sum_i w_i (logits_i - base), one forward pass per input per batch."""
    with device_slot("evaluate-decoding"):
        return _evaluator(base_folder).evaluate_ensemble([Path(f) for f in folders], weights, requests)


@task(name="calibrate", cache_policy=NO_CACHE, persist_result=False)
def calibrate_task(
    reg: Registry, spec: CompositionSpec, base_folder: str, folders: list[str], out: str, trigger: str
) -> str:
    """Activation norms of the base on the calibration set, for every module of the inputs (a file).
    The data is read with the access of the principal the run acts as (as the evaluation datasets are)."""
    uri = spec.calibration_dataset()
    assert uri is not None
    opener = lambda url: open_store_for(reg.settings, url)  # noqa: E731 - S3 with the registry's credentials
    access = SourceAccess.for_principal(reg.settings, reg.acting.kind)
    dataset = load_dataset(uri, "perplexity", opener, access)
    with open_adapters(list(folders)) as lazies:  # the module paths, from the headers alone
        paths = sorted({p for lazy in lazies for p in lazy.skeleton.modules})
    evaluator = _evaluator(base_folder)
    with device_slot("calibrate"):
        norms = activation_norms(
            evaluator.base, evaluator.tok, [r["text"] for r in dataset.rows], paths, evaluator.max_len
        )
    save_norms(norms, Path(out))
    return out


def compare_decoding(
    base_folder: str,
    folders: list[str],
    weights: list[float],
    requests: list[EvalRequest],
    metrics: dict[str, float],
) -> dict[str, Any]:
    """Weight-space metrics beside the decoding-time metrics of the same weighted inputs."""
    decoding = ensemble_evaluate_task(base_folder, folders, weights, requests)
    rows = interference_cost(metrics, decoding, {r.name: r.metric for r in requests})
    return {"formula": ENSEMBLE_FORMULA, "evaluations": rows}


def publish_comparison(spec: CompositionSpec, comparison: dict[str, Any]) -> None:
    rows = comparison["evaluations"]
    lines = [
        f"# Weight space vs decoding time: `{spec.name}` ({spec.method})",
        "",
        "Interference cost: how much worse the weight-space result is than combining the same weighted",
        "inputs at decoding time (perplexity: excess; accuracy: shortfall).",
        "",
        "| evaluation | metric | weight space | decoding time | interference cost |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['evaluation']} | {r['metric']} | {r['weight_space']:.6g} | {r['decoding_time']:.6g} "
        f"| {r['interference_cost']:+.6g} |"
        for r in rows
    ]
    create_markdown_artifact(
        "\n".join(lines), key=f"decoding-{_slug(spec.name)}", description="weight space vs decoding time"
    )
    create_table_artifact(rows, key=f"interference-cost-{_slug(spec.name)}", description="interference cost")


@task(
    name="register-ensemble",
    cache_policy=NO_CACHE,
    persist_result=False,
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=is_transient,
)
def register_ensemble_task(
    reg: Registry,
    comp: CompositionView,
    spec: CompositionSpec,
    inputs: list[ResolvedInput],
    metrics: dict[str, float],
    provenance: dict[str, Any],
) -> CompositionView:
    return register_ensemble(reg, comp, spec, inputs, metrics=metrics, provenance=provenance)
