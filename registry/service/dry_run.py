"""Dry run of a spec: resolve inputs, check compatibility, report interference; compose nothing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..spec import CompositionSpec
from .compose_inputs import ResolvedInput, composition_key, fetch_input, resolve_inputs
from .context import Registry


@dataclass(frozen=True)
class DryInput(ResolvedInput):
    rank: int | None = None


@dataclass
class DryRun:
    composition_id: str
    method: str
    inputs: list[DryInput]
    interference: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "composition_id": self.composition_id,
            "method": self.method,
            "inputs": [i.to_dict() for i in self.inputs],
            "interference": self.interference,
        }


def dry_run(reg: Registry, spec: CompositionSpec) -> DryRun:
    from ..compose import check_adapters, check_params, interference_report
    from ..compose.base import MethodParams
    from ..pem import read_adapter

    inputs = resolve_inputs(reg, spec)
    adapters = [read_adapter(fetch_input(reg, i)) for i in inputs]
    weights = [i.weight for i in inputs]
    params = MethodParams(spec.method, spec.rank, spec.density, spec.majority_sign, spec.seed)
    check_params(len(adapters), weights, params)
    check_adapters(adapters, params)
    report = interference_report(
        adapters,
        weights,
        threshold=reg.settings.interference_threshold,
        names=[i.label for i in inputs],
        method=spec.method,
        cross_term_threshold=reg.settings.linear_cross_term_threshold,
    )
    dry = [DryInput(**i.to_dict(), rank=a.metadata().get("r")) for i, a in zip(inputs, adapters, strict=True)]
    return DryRun(composition_key(spec, inputs), spec.method, dry, report.to_dict())
