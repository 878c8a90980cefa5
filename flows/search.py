"""Lambda search inside the compose flow: every candidate is composed and evaluated as its own task."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_table_artifact

from registry.evaluation.search import make_strategy
from registry.service.compositions.inputs import ResolvedInput
from registry.spec import CompositionSpec, Ref
from registry.views import SearchCandidate, SearchRecord

from .tasks import TASK, compose_task, evaluate_task


@task(name="search-candidate", **TASK)
def candidate_task(
    folders: list[str], weights: list[float], spec: CompositionSpec, base: str, requests: list[Any], out: str
) -> dict[str, Any]:
    engine = compose_task.fn(folders, weights, spec, out)
    return {"engine": engine, "metrics": evaluate_task.fn(base, out, requests)}


def run_search(
    spec: CompositionSpec,
    inputs: list[ResolvedInput],
    folders: list[str],
    base: str,
    requests: list[Any],
    work: Path,
    feasible: Callable[[dict[str, float]], bool],
) -> tuple[SearchRecord, str, dict[str, Any]]:
    """Returns (the record for the run, provenance and artifacts; the winner's folder; its engine).

    The winner is the best candidate by the objective among those that pass the spec's gates; when
    none passes, the best overall (which the gates then reject)."""
    assert spec.search is not None
    objective = spec.search.objective
    by_key = {key: Ref.parse(key).full_name for key in spec.search.weights}
    strategy = make_strategy(spec.search, spec.seed)
    results: dict[int, dict[str, Any]] = {}
    for batch in strategy.batches():
        futures = []
        for cand in batch:
            chosen = {by_key[k]: w for k, w in cand.weights.items()}
            weights = [chosen.get(i.name, i.weight) for i in inputs]
            out = str(work / f"candidate-{cand.index}")
            futures.append(
                (cand, chosen, out, candidate_task.submit(folders, weights, spec, base, requests, out))
            )
        for cand, chosen, out, future in futures:
            result = future.result()
            results[cand.index] = {
                "weights": chosen,
                "folder": out,
                "passes_gates": feasible(result["metrics"]),
                **result,
            }
            strategy.tell(cand, result["metrics"][objective.evaluation])
    best, _ = strategy.best(lambda cand: results[cand.index]["passes_gates"])
    winner = results[best.index]
    rows = [
        {
            "candidate": i,
            **{f"w[{k}]": round(v, 6) for k, v in r["weights"].items()},
            **r["metrics"],
            "passes_gates": r["passes_gates"],
            "winner": i == best.index,
        }
        for i, r in sorted(results.items())
    ]
    create_table_artifact(
        rows,
        key="lambda-search",
        description=f"{spec.search.strategy} search, {objective.goal} {objective.evaluation}",
    )
    record = SearchRecord(
        strategy=spec.search.strategy,
        objective=objective.model_dump(),
        candidates=[
            SearchCandidate(
                index=i, weights=r["weights"], metrics=r["metrics"], passes_gates=r["passes_gates"]
            )
            for i, r in sorted(results.items())
        ],
        winner=best.index,
        winner_metrics=winner["metrics"],
    )
    return record, winner["folder"], winner["engine"]
