"""Dry run of a spec: resolve inputs, check compatibility, report interference, say how many search
candidates and evaluations a run would make, and measure each method's controls (its result's norm
and cosine against the exact weighted sum, compose/controls.py) by composing in passing: each output
module is measured and dropped, nothing is written or registered. The inputs are read one module at a
time (memory flat in their number and size).

`check_composable` is every check a composition must pass before a run starts; `POST /v1/compositions`
and `pemreg compose` run it too, so they refuse exactly what `:validate` / `--dry-run` refuse.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.errors import InvalidInput
from registry.service.catalog.lifecycle import input_warnings
from registry.service.compositions.authority import admit
from registry.service.compositions.cycles import check_no_cycle
from registry.service.compositions.inputs import ResolvedInput, composition_key, fetch_input
from registry.service.context import Registry
from registry.spec import CompositionSpec

if TYPE_CHECKING:
    from registry.compose.base import MethodParams
    from registry.compose.interference import InterferenceMeter
    from registry.pem import PemAdapter


@dataclass(frozen=True)
class DryInput(ResolvedInput):
    rank: int | None = None


@dataclass(frozen=True)
class SearchPlan:
    """What a run's search will do: candidates = methods x scale x weight candidates, each composed
    and evaluated on every evaluation of the spec; the parents are evaluated once (cached by digest)."""

    methods: list[str]
    scale: list[float]
    weight_candidates: int
    candidates: int
    evaluations: int  # candidates x evaluations of the spec
    parent_evaluations: int  # at most: inputs x evaluations (the catalog caches them)


@dataclass
class DryRun:
    cache_key: str  # content hash of spec + input digests + engine; not a run id (a dry run has none)
    method: str
    inputs: list[DryInput]
    interference: dict[str, Any]
    search: SearchPlan | None = None
    # per method tried (the spec's `method`, or each of `search.methods`) at the written weights and
    # scale 1: the control summary ({} where it needs a calibration run: core_criterion importance)
    controls: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "cache_key": self.cache_key,
            "method": self.method,
            "inputs": [i.to_dict() for i in self.inputs],
            "interference": self.interference,
            "search": asdict(self.search) if self.search is not None else None,
            "controls": self.controls,
        }


def check_composable(reg: Registry, spec: CompositionSpec, inputs: list[ResolvedInput]) -> list[PemAdapter]:
    """Run every check of the engine (shapes, ranks under linear, PEM type, base, method parameters,
    rank bound) on the inputs' headers, without reading their tensors (memory flat in the inputs:
    their data was validated at registration and is sha256-checked on fetch; the run reads each
    module again, validated). Returns the inputs' skeletons (shape-only tensors)."""
    from registry.compose import check_adapters, check_params
    from registry.compose.base import get_composer
    from registry.pem.lazy import open_adapters

    with open_adapters([fetch_input(reg, i) for i in inputs]) as lazies:
        adapters = [lazy.skeleton for lazy in lazies]
    names = [i.label for i in inputs]
    searched = spec.search is not None and spec.search.methods is not None
    for name in spec.searched_methods():  # under search.methods, every method as composed alone
        try:
            params = method_params(spec.for_method(name) if searched else spec)
            check_params(len(adapters), [i.weight for i in inputs], params)
            check_adapters(adapters, params, names=names)
        except InvalidInput as exc:
            if not searched or exc.field != "method":
                raise
            raise InvalidInput(str(exc), field="search.methods") from None
    if spec.rank is not None:
        get_composer(adapters[0].pem_type).check_rank(adapters, spec.rank, names)
    return adapters


def method_params(spec: CompositionSpec) -> MethodParams:
    """The engine's parameters of a spec (its one method)."""
    from registry.compose.base import MethodParams

    return MethodParams(
        spec.method,
        spec.rank,
        spec.density,
        spec.majority_sign,
        spec.seed,
        spec.core_criterion or "magnitude",
        extra=spec.params or {},
    )


def search_plan(spec: CompositionSpec, n_inputs: int) -> SearchPlan | None:
    from registry.evaluation.search import arms, candidate_count, weight_candidates

    if spec.search is None:
        return None
    count = candidate_count(spec.search, spec.method)
    return SearchPlan(
        methods=sorted({a.method for a in arms(spec.search, spec.method)}, key=spec.searched_methods().index),
        scale=list(spec.search.scale or [1.0]),
        weight_candidates=weight_candidates(spec.search),
        candidates=count,
        evaluations=count * len(spec.evaluate),
        parent_evaluations=n_inputs * len(spec.evaluate),
    )


def method_controls(
    spec: CompositionSpec, folders: list[Path], weights: list[float], meter: InterferenceMeter
) -> dict[str, dict[str, Any]]:
    """Each tried method's control summary at the written weights (see DryRun.controls). The first
    measured method's pass also feeds `meter` (the interference report: each input read once for
    both); when no method is measured, the report reads the inputs on its own."""
    from registry.compose.measure import measure_files

    searched = spec.search is not None and spec.search.methods is not None
    out: dict[str, dict[str, Any]] = {}
    fed = False
    for name in spec.searched_methods():
        alone = spec.for_method(name) if searched else spec
        if alone.core_criterion == "importance":  # needs the base's activations: measured by the run
            out[name] = {}
            continue
        observers = () if fed else (meter,)
        out[name] = measure_files(folders, weights, method_params(alone), observers=observers)["summary"]
        fed = True
    if not fed:
        from registry.pem.lazy import open_adapters

        with open_adapters(list(folders)) as lazies:
            meter.read(lazies)
    return out


def dry_run(reg: Registry, spec: CompositionSpec) -> DryRun:
    from registry.compose.interference import InterferenceMeter

    inputs = admit(reg, spec)  # what a submission would refuse (principal, policy, sources) ...
    check_no_cycle(reg, spec)  # ... and a recompose cycle
    skeletons = check_composable(reg, spec, inputs)
    weights = [i.weight for i in inputs]
    folders = [fetch_input(reg, i) for i in inputs]
    meter = InterferenceMeter(weights, spec.density)  # the core overlap's fraction; none without one
    controls = method_controls(spec, folders, weights, meter)
    report = meter.report(
        reg.settings.interference_threshold,
        [i.label for i in inputs],
        spec.method,
        reg.settings.linear_cross_term_threshold,
    )
    report.warnings[:0] = input_warnings(reg, [(i.name, i.version) for i in inputs])
    dry = [
        DryInput(**i.to_dict(), rank=a.metadata().get("r")) for i, a in zip(inputs, skeletons, strict=True)
    ]
    return DryRun(
        composition_key(spec, inputs),
        spec.method,
        dry,
        report.to_dict(),
        search_plan(spec, len(inputs)),
        controls,
    )
