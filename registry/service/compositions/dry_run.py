"""Dry run of a spec: resolve inputs, check compatibility, report interference; compose nothing.
The inputs are read one module at a time (memory flat in their number and size).

`check_composable` is every check a composition must pass before a run starts; `POST /v1/compositions`
and `pemreg compose` run it too, so they refuse exactly what `:validate` / `--dry-run` refuse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from registry.service.catalog.lifecycle import input_warnings
from registry.service.compositions.authority import admit
from registry.service.compositions.cycles import check_no_cycle
from registry.service.compositions.inputs import ResolvedInput, composition_key, fetch_input
from registry.service.context import Registry
from registry.spec import CompositionSpec

if TYPE_CHECKING:
    from registry.pem import PemAdapter


@dataclass(frozen=True)
class DryInput(ResolvedInput):
    rank: int | None = None


@dataclass
class DryRun:
    cache_key: str  # content hash of spec + input digests + engine; not a run id (a dry run has none)
    method: str
    inputs: list[DryInput]
    interference: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "cache_key": self.cache_key,
            "method": self.method,
            "inputs": [i.to_dict() for i in self.inputs],
            "interference": self.interference,
        }


def check_composable(reg: Registry, spec: CompositionSpec, inputs: list[ResolvedInput]) -> list[PemAdapter]:
    """Run every check of the engine (shapes, ranks under linear, PEM type, base, method parameters,
    rank bound) on the inputs' headers, without reading their tensors (memory flat in the inputs:
    their data was validated at registration and is sha256-checked on fetch; the run reads each
    module again, validated). Returns the inputs' skeletons (shape-only tensors)."""
    from registry.compose import check_adapters, check_params
    from registry.compose.base import MethodParams, get_composer
    from registry.pem.lazy import open_adapters

    with open_adapters([fetch_input(reg, i) for i in inputs]) as lazies:
        adapters = [lazy.skeleton for lazy in lazies]
    params = MethodParams(
        spec.method, spec.rank, spec.density, spec.majority_sign, spec.seed, extra=spec.params or {}
    )
    check_params(len(adapters), [i.weight for i in inputs], params)
    names = [i.label for i in inputs]
    check_adapters(adapters, params, names=names)
    if spec.rank is not None:
        get_composer(adapters[0].pem_type).check_rank(adapters, spec.rank, names)
    return adapters


def dry_run(reg: Registry, spec: CompositionSpec) -> DryRun:
    from registry.compose import interference_files

    inputs = admit(reg, spec)  # what a submission would refuse (principal, policy, sources) ...
    check_no_cycle(reg, spec)  # ... and a recompose cycle
    skeletons = check_composable(reg, spec, inputs)
    weights = [i.weight for i in inputs]
    report = interference_files(  # one module of every input at a time
        [fetch_input(reg, i) for i in inputs],
        weights,
        threshold=reg.settings.interference_threshold,
        names=[i.label for i in inputs],
        method=spec.method,
        cross_term_threshold=reg.settings.linear_cross_term_threshold,
    )
    report.warnings[:0] = input_warnings(reg, [(i.name, i.version) for i in inputs])
    dry = [
        DryInput(**i.to_dict(), rank=a.metadata().get("r")) for i, a in zip(inputs, skeletons, strict=True)
    ]
    return DryRun(composition_key(spec, inputs), spec.method, dry, report.to_dict())
