"""Compatibility checks run before any tensor arithmetic; each raises with one precise line."""

from __future__ import annotations

import math
from collections.abc import Sequence

from registry.compose.base import MethodParams, get_composer
from registry.compose.methods import get_method, method_names
from registry.errors import IncompatibleAdapters, InvalidInput
from registry.pem import PemAdapter


def check_params(n_inputs: int, weights: Sequence[float], params: MethodParams) -> None:
    if n_inputs == 0:
        raise InvalidInput("empty expression: no input adapters", field="expression")
    if len(weights) != n_inputs:
        raise InvalidInput(f"{len(weights)} weights for {n_inputs} adapters", field="expression")
    if not all(math.isfinite(w) for w in weights):
        raise InvalidInput("weights must be finite numbers", field="expression")
    if all(w == 0 for w in weights):
        raise InvalidInput("every weight is 0: the composition would be a no-op", field="expression")
    method = get_method(params.method)
    if method is None:
        names = ", ".join(method_names())
        raise InvalidInput(f"unknown method {params.method!r} (one of {names})", field="method")
    if params.rank is not None and params.rank <= 0:
        raise InvalidInput(f"rank must be a positive integer, got {params.rank}", field="rank")
    # Every parameter the method declares, checked from its declaration (compose/methods.py).
    bad = method.params_problem(params.extra)
    if bad is not None:
        raise InvalidInput(bad[1], field=bad[0])
    for param in (p for p in method.params if p.where == "spec"):
        value = getattr(params, param.name)
        if param.choices and value not in param.choices:
            raise InvalidInput(
                f"{param.name} must be one of {', '.join(param.choices)}, got {value!r}", field=param.name
            )
        given = value is not None and param.type != "str"
        if (param.required and value is None) or (given and not param.in_range(value)):
            raise InvalidInput(
                f"{method.name} needs {param.name} in {param.range_text()}, got {value}", field=param.name
            )
    cross = method.fields_problem(
        {p.name: getattr(params, p.name) for p in method.params if p.where == "spec"}, params.extra
    )
    if cross is not None:
        raise InvalidInput(cross[1], field=cross[0])
    importance = method.takes("core_criterion") and params.core_criterion == "importance"
    if importance and params.activation_norms is None:
        raise InvalidInput(
            "core_criterion 'importance' needs activation norms from a calibration set",
            field="calibration",
        )


def check_adapters(
    adapters: Sequence[PemAdapter],
    params: MethodParams,
    *,
    check_base_model: bool = True,
    names: Sequence[str] | None = None,
) -> None:
    """`check_base_model=False` when the caller (the catalog) already matched the inputs to one
    registered base: configs may spell the same base differently (local path vs hub id). `names`: how
    errors name the inputs (the catalog's `name@version`; else their positions)."""
    first = adapters[0]
    base = (first.base_model, first.config.get("revision"))
    for i, a in enumerate(adapters[1:], start=1):
        if a.pem_type != first.pem_type:
            raise IncompatibleAdapters(
                f"PEM types differ: input 0 is {first.pem_type}, input {i} is {a.pem_type}"
            )
        other = (a.base_model, a.config.get("revision"))
        # An unknown (None) base is the catalog's call; two known ones must agree.
        if check_base_model and base[0] and other[0] and base != other:
            raise IncompatibleAdapters(
                f"base models differ: input 0 is {_base(base)}, input {i} is {_base(other)}"
            )
    for i, a in enumerate(adapters):
        if a.config.get("use_dora"):
            raise IncompatibleAdapters(
                f"input {i} is DoRA (use_dora): magnitude vectors renormalise weights, so deltas do not add"
            )
    saves = [sorted(a.config.get("modules_to_save") or []) for a in adapters]
    if any(s != saves[0] for s in saves):
        raise IncompatibleAdapters(
            f"modules_to_save differ between inputs ({saves}): they are not composable"
        )
    if saves[0]:
        raise IncompatibleAdapters(
            f"modules_to_save {saves[0]} are full trained copies, not PEM deltas: "
            "arithmetic on them is undefined"
        )
    method = get_method(params.method)
    composer = get_composer(first.pem_type)
    if method is not None and (first.pem_type not in method.pem_types or method.name not in composer.rules()):
        raise InvalidInput(
            f"method {method.name} supports PEM types {', '.join(method.pem_types)}, not {first.pem_type}",
            field="method",
        )
    composer.check(adapters, params, names)


def _base(base: tuple[str | None, str | None]) -> str:
    return f"{base[0]}@{base[1]}" if base[1] else str(base[0])
