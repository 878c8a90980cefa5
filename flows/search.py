"""Search inside the compose flow: every candidate is composed and evaluated as its own task.

The space is `search.methods` x `search.scale` x the weight strategy's candidates
(registry/evaluation/search.py). A candidate composes the spec as its method alone would
(`CompositionSpec.for_method`: the fields that method takes, without the others), with the candidate's
weights and scale; so the winner's folder is exactly what composing the winner alone gives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_table_artifact

from registry.compose.methods import get_method
from registry.evaluation.search import arms, best_index, make_strategy
from registry.service.compositions.inputs import ResolvedInput
from registry.spec import CompositionSpec, Ref
from registry.views import SearchCandidate, SearchRecord

from .tasks import TASK, compose_task, evaluate_task


@task(name="search-candidate", **TASK)
def candidate_task(
    folders: list[str],
    weights: list[float],
    spec: CompositionSpec,
    base: str,
    requests: list[Any],
    out: str,
    scale: float = 1.0,
) -> dict[str, Any]:
    engine = compose_task.fn(folders, weights, spec, out, scale=scale)
    return {"engine": engine, "metrics": evaluate_task.fn(base, out, requests)}


@dataclass(frozen=True)
class SearchOutcome:
    record: SearchRecord
    folder: str  # the winner's composed adapter
    engine: dict[str, Any]  # the winner's engine report
    method: str  # the winner's method


def taken_params(method: str, used: dict[str, Any]) -> dict[str, Any]:
    """The engine's parameters as used, restricted to those the method declares (rank resolved)."""
    declared = get_method(method)
    return {k: v for k, v in used.items() if declared is not None and declared.takes(k)}


def run_search(
    spec: CompositionSpec,
    inputs: list[ResolvedInput],
    folders: list[str],
    base: str,
    requests: list[Any],
    work: Path,
    feasible: Callable[[dict[str, float]], bool],
) -> SearchOutcome:
    """Every candidate of the space, evaluated; the winner is the best by the objective among those
    that pass the spec's gates; when none passes, the best overall (which the gates then reject)."""
    assert spec.search is not None
    objective = spec.search.objective
    by_key = {key: Ref.parse(key).full_name for key in spec.search.weights or {}}
    results: dict[int, dict[str, Any]] = {}
    for arm in arms(spec.search, spec.method):
        alone = spec.for_method(arm.method)
        strategy = make_strategy(spec.search, spec.seed)  # one per arm: nevergrad adapts within it
        for batch in strategy.batches():
            futures: list[tuple[int, Any, dict[str, float], str, Any]] = []
            for cand in batch:
                index = len(results) + len(futures)
                chosen = {by_key[k]: w for k, w in cand.weights.items()}
                weights = [chosen.get(i.name, i.weight) for i in inputs]
                out = str(work / f"candidate-{index}")
                future = candidate_task.submit(folders, weights, alone, base, requests, out, arm.scale)
                futures.append((index, cand, chosen, out, future))
            for index, cand, chosen, out, future in futures:
                result = future.result()
                results[index] = {"arm": arm, "weights": chosen, "folder": out, **result}
                results[index]["gates_passed"] = feasible(result["metrics"])
                strategy.tell(cand, result["metrics"][objective.evaluation])
    winner = best_index(
        {i: r["metrics"][objective.evaluation] for i, r in results.items()},
        {i: r["gates_passed"] for i, r in results.items()},
        objective.goal,
    )
    candidates = [
        SearchCandidate(
            index=i,
            method=r["arm"].method,
            params=taken_params(r["arm"].method, r["engine"]["params"]),
            weights=r["weights"],
            scale=r["arm"].scale,
            metrics=r["metrics"],
            objective=r["metrics"][objective.evaluation],
            gates_passed=r["gates_passed"],
            winner=i == winner,
        )
        for i, r in sorted(results.items())
    ]
    create_table_artifact(
        [
            {
                "candidate": c.index,
                "method": c.method,
                "scale": c.scale,
                **{f"w[{k}]": round(v, 6) for k, v in c.weights.items()},
                **c.metrics,
                "gates_passed": c.gates_passed,
                "winner": c.winner,
            }
            for c in candidates
        ],
        key="lambda-search",
        description=f"{spec.search.strategy} search, {objective.goal} {objective.evaluation}",
    )
    record = SearchRecord(
        strategy=spec.search.strategy,
        objective=objective.model_dump(),
        candidates=candidates,
        winner=winner,
        winner_metrics=results[winner]["metrics"],
    )
    best = results[winner]
    return SearchOutcome(record, best["folder"], best["engine"], best["arm"].method)
