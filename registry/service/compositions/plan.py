"""The plan of one composition run, built once when the run starts and read by every later step.

A flow run used to re-derive its inputs, datasets, base model and kind of work in each step; the plan
holds them, typed: the resolved inputs with their local folders (fetched once, digest-checked), the
method and parameters (the spec), the evaluation requests (read once, with the access of the principal
the run acts as), the base model's folder when a step needs one, and the strategy: what the run does
(a weight merge, a search over candidates, or a decoding-time ensemble).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from registry.service.compositions.inputs import ResolvedInput, base_model_folder
from registry.service.compositions.reads import CompositionView
from registry.service.context import Registry, open_store_for
from registry.sources import SourceAccess
from registry.spec import CompositionSpec

if TYPE_CHECKING:
    from registry.evaluation import EvalRequest


class Strategy(enum.StrEnum):
    """What a run does between its inputs and its finish (flows/strategies.py runs each)."""

    WEIGHT_MERGE = "weight_merge"  # one streamed pass: compose, interference and controls
    SEARCH = "search"  # every candidate composed and evaluated, the best feasible one kept
    ENSEMBLE = "ensemble"  # decoding time: no weights composed, the recipe registered

    @classmethod
    def of(cls, spec: CompositionSpec) -> Strategy:
        if spec.search is not None:
            return cls.SEARCH
        if spec.output.kind == "ensemble":
            return cls.ENSEMBLE
        return cls.WEIGHT_MERGE


@dataclass(frozen=True)
class RunPlan:
    composition: CompositionView
    spec: CompositionSpec
    inputs: tuple[ResolvedInput, ...]  # weights as the spec gives them
    folders: tuple[str, ...]  # each input's local PEFT folder, in the same order
    requests: tuple[EvalRequest, ...]  # the spec's evaluations, datasets loaded
    base: str  # the base model's folder (or hub id); "" when no step needs the base
    work: Path  # the run's scratch folder (removed when the flow ends)
    started: str  # ISO timestamp

    @property
    def strategy(self) -> Strategy:
        return Strategy.of(self.spec)

    @property
    def names(self) -> list[str]:
        return [i.label for i in self.inputs]

    @property
    def weights(self) -> list[float]:
        return [i.weight for i in self.inputs]

    @property
    def metric_of(self) -> dict[str, str]:
        return {r.name: r.metric for r in self.requests}


def needs_base(spec: CompositionSpec) -> bool:
    """Evaluations, importance calibration and a merged model load the base model."""
    return bool(spec.evaluate) or spec.core_criterion == "importance" or spec.output.kind == "merged_model"


def plan_run(
    reg: Registry,
    spec: CompositionSpec,
    composition: CompositionView,
    folders: Sequence[str],
    work: Path,
    started: str,
) -> RunPlan:
    """The run's plan; `folders` are the fetched inputs (flows/tasks.fetch_input_task, one task each)."""
    inputs = tuple(run_inputs(composition))
    return RunPlan(
        composition=composition,
        spec=spec,
        inputs=inputs,
        folders=tuple(folders),
        requests=tuple(evaluation_requests(reg, spec)),
        base=base_model_folder(reg, list(inputs)) if needs_base(spec) else "",
        work=work,
        started=started,
    )


def run_inputs(composition: CompositionView) -> list[ResolvedInput]:
    """The inputs the run resolved at submission, with the spec's weights."""
    return [ResolvedInput(**i.model_dump(exclude={"applied_weight"})) for i in composition.inputs]


def evaluation_requests(reg: Registry, spec: CompositionSpec) -> list[EvalRequest]:
    """The spec's evaluation data, read with the access of the principal the run acts as (who stored
    the spec, whatever triggered this run): an API key may only name the artifact store and
    PEMREG_SOURCE_ROOTS; the local user reads any local file."""
    from registry.evaluation import EvalRequest, load_dataset

    opener = lambda url: open_store_for(reg.settings, url)  # noqa: E731 - S3 with the registry's credentials
    access = SourceAccess.for_principal(reg.settings, reg.acting.kind)
    return [
        EvalRequest(e.name, e.metric, load_dataset(e.dataset, e.metric, opener, access))
        for e in spec.evaluate
    ]
