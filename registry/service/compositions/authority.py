"""May this principal run this spec? One answer, asked when the spec is submitted (REST, CLI, `:validate`,
a dry run) and again when any run of it starts (a queued run a worker takes, a schedule firing, a
recomposition, a retry), so nothing that acts later or elsewhere is allowed more than the request that
stored it would be now.

A run acts as the principal who stored its spec (`principals.acting_for`: a key by the row it used, an
SSO user with its groups as last seen, the operator). What is checked, as `reg.acting`:
- the principal may still act (`principals.check_current`): its key row still active, SSO still on;
- the one access policy (`policy.authorize_composition`): read on every input's namespace, write on
  the output's, maintainer there for each protected alias the spec moves;
- every source the run will read under the principal's `SourceAccess` (registry/sources.py):
  evaluation datasets and the calibration set, and the base model where a remote principal's run would
  load it from a hub without PEMREG_ALLOW_HUB_SOURCES (known once the inputs are resolved).
"""

from __future__ import annotations

from registry.service.access.policy import authorize_composition
from registry.service.access.principals import check_current
from registry.service.compositions.inputs import ResolvedInput, resolve_inputs, spec_inputs
from registry.service.context import Registry
from registry.sources import SourceAccess, is_hub_id, refusal
from registry.spec import CompositionSpec


def access_of(reg: Registry) -> SourceAccess:
    return SourceAccess.for_principal(reg.settings, reg.acting.kind)


def loads_base(spec: CompositionSpec) -> bool:
    """Whether a run of this spec reads the base model (evaluation, calibration, a merged output)."""
    return bool(spec.evaluate) or spec.core_criterion == "importance" or spec.output.kind == "merged_model"


def check_datasets(reg: Registry, spec: CompositionSpec) -> None:
    """Every dataset the run reads (evaluations, the calibration set)."""
    access = access_of(reg)
    for i, evaluation in enumerate(spec.evaluate):
        access.check(evaluation.dataset, f"evaluate[{i}].dataset")
    if spec.calibration is not None and spec.calibration not in {e.name for e in spec.evaluate}:
        access.check(spec.calibration, "calibration")


def check_base(reg: Registry, spec: CompositionSpec, inputs: list[ResolvedInput]) -> None:
    """The base model the run would download: a hub id needs PEMREG_ALLOW_HUB_SOURCES for a remote
    principal (its other sources were checked when the base model was registered)."""
    access = access_of(reg)
    if not inputs or not loads_base(spec) or access.local_user or access.allow_hub:
        return
    from registry.service.registration.base_models import require_base_model

    with reg.sessions() as session:
        source = require_base_model(session, inputs[0].base_model).source
    if is_hub_id(source):
        raise refusal(source, "base_model", hub=True)


def authorize(reg: Registry, spec: CompositionSpec, inputs: list[ResolvedInput] | None = None) -> None:
    """Raise (PermissionDenied, NotFound for what the principal cannot see, InvalidInput naming the
    field) unless `reg.acting` may run `spec`; with the resolved `inputs`, their base model too."""
    check_current(reg)
    with reg.sessions() as session:
        authorize_composition(session, reg.acting, spec.name, spec_inputs(spec), list(spec.output.aliases))
    check_datasets(reg, spec)
    if inputs is not None:
        check_base(reg, spec, inputs)


def admit(reg: Registry, spec: CompositionSpec) -> list[ResolvedInput]:
    """A spec about to run, or asked about (`:validate`): `authorize` before its inputs are resolved (a
    refusal reads the same whether or not they exist), then the inputs, then their base model."""
    authorize(reg, spec)
    inputs = resolve_inputs(reg, spec)
    check_base(reg, spec, inputs)
    return inputs
