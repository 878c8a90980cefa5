"""May this principal run this spec? One answer, asked when the spec is submitted and again when any run
of it starts (REST, CLI, schedule, recompose, retry), so nothing that acts later or elsewhere is
allowed more than the request that stored it.

A run acts as the principal who stored its spec (`Registry.actor`): the local user (the CLI on this
machine) or an API key. What is checked:
- the principal: a key must still be active and at least a writer (a revoked key's schedule stops,
  and the run's error says why);
- every source the run will read (evaluation datasets, the calibration set) under the principal's
  `SourceAccess` (registry/sources.py), and the base model only where a remote principal's run would
  load it from a hub without PEMREG_ALLOW_HUB_SOURCES.
`authorize` is the one entry point; namespace grants (org) extend it here.
"""

from __future__ import annotations

from registry.errors import PermissionDenied
from registry.service.admin.keys import ROLES, key_status
from registry.service.compositions.inputs import ResolvedInput
from registry.service.context import Registry
from registry.sources import LOCAL, SourceAccess, is_hub_id, refusal
from registry.spec import CompositionSpec

RUN_ROLE = "writer"  # composing is a writer's right (REST: POST /v1/compositions)


def check_principal(reg: Registry) -> None:
    """The principal may still start runs."""
    who = reg.actor
    if who.kind == LOCAL:
        return
    if who.kind != "key":
        raise PermissionDenied(f"{who.name!r} ({who.kind}) may not start compositions")
    status = key_status(reg, who.key_id) if who.key_id is not None else None
    if status is None:
        raise PermissionDenied(f"API key {who.name!r} that stored this spec no longer exists")
    role, revoked_at = status
    if revoked_at is not None:
        raise PermissionDenied(
            f"API key {who.name!r} that stored this spec was revoked at {revoked_at}; "
            "its runs no longer start"
        )
    if ROLES.index(role) < ROLES.index(RUN_ROLE):
        raise PermissionDenied(f"API key {who.name!r} has role {role}; composing needs {RUN_ROLE} or above")


def access_of(reg: Registry) -> SourceAccess:
    return SourceAccess.for_principal(reg.settings, reg.actor.kind)


def loads_base(spec: CompositionSpec) -> bool:
    """Whether a run of this spec reads the base model (evaluation, calibration, a merged output)."""
    return bool(spec.evaluate) or spec.core_criterion == "importance" or spec.output.kind == "merged_model"


def check_sources(reg: Registry, spec: CompositionSpec, inputs: list[ResolvedInput] | None = None) -> None:
    """Every dataset the run reads, and (given the resolved inputs) a hub base it would download."""
    access = access_of(reg)
    for i, evaluation in enumerate(spec.evaluate):
        access.check(evaluation.dataset, f"evaluate[{i}].dataset")
    if spec.calibration is not None and spec.calibration not in {e.name for e in spec.evaluate}:
        access.check(spec.calibration, "calibration")
    if inputs and loads_base(spec) and not access.local_user and not access.allow_hub:
        from registry.service.registration.base_models import require_base_model

        with reg.sessions() as session:
            source = require_base_model(session, inputs[0].base_model).source
        if is_hub_id(source):
            raise refusal(source, "base_model", hub=True)


def authorize(reg: Registry, spec: CompositionSpec, inputs: list[ResolvedInput] | None = None) -> None:
    """Raise (PermissionDenied, InvalidInput naming the field) unless `reg.actor` may run `spec`."""
    check_principal(reg)
    check_sources(reg, spec, inputs)
