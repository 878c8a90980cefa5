"""The rules of the dense methods, one per method name, shared by every PEM type.

A dense rule gets one module: `deltas()` yields the inputs' dense deltas one at a time (LoRA:
D_i = s_i B_i A_i, d x k; (IA)3: l_i - 1), a fresh pass per call, so no rule holds every input's
dense delta at once. It returns the merged dense delta and its report entries; the composer makes
the output (LoRA: exact truncated SVD to the method's output rank; (IA)3: 1 + merged).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

from registry.compose.base import Entry, MethodParams
from registry.compose.breadcrumbs import breadcrumbs
from registry.compose.core_merge import core_merge
from registry.compose.della import della
from registry.compose.methods import all_methods, get_method, plugin_function
from registry.compose.pruning import dare_seed, prune_merge

Deltas = Callable[[], Iterable[torch.Tensor]]
# (deltas, entries, params, module path, per-entry calibration norms or None) -> (merged, report)
DenseRule = Callable[
    [Deltas, Sequence[Entry], MethodParams, str, torch.Tensor | None], tuple[torch.Tensor, dict[str, Any]]
]


def _prune(
    deltas: Deltas, entries: Sequence[Entry], params: MethodParams, path: str, norms: torch.Tensor | None
) -> tuple[torch.Tensor, dict[str, Any]]:
    seeds = [dare_seed(params.seed, path, e.index) for e in entries]
    weights = [e.weight for e in entries]
    merged = prune_merge(
        deltas, weights, params.method, params.required_density(), params.majority_sign, seeds
    )
    return merged, {}


def _core(
    deltas: Deltas, entries: Sequence[Entry], params: MethodParams, path: str, norms: torch.Tensor | None
) -> tuple[torch.Tensor, dict[str, Any]]:
    merged, core = core_merge(
        deltas(), [e.weight for e in entries], [e.index for e in entries], params.density or 0.0, norms
    )
    return merged, {"core": core}


def _breadcrumbs(
    deltas: Deltas, entries: Sequence[Entry], params: MethodParams, path: str, norms: torch.Tensor | None
) -> tuple[torch.Tensor, dict[str, Any]]:
    merged = breadcrumbs(
        deltas(), [e.weight for e in entries], params.required_density(), float(params.value("gamma"))
    )
    return merged, {}


def _della(
    deltas: Deltas, entries: Sequence[Entry], params: MethodParams, path: str, norms: torch.Tensor | None
) -> tuple[torch.Tensor, dict[str, Any]]:
    seeds = [dare_seed(params.seed, path, e.index) for e in entries]
    epsilon = float(params.value("epsilon"))
    weights = [e.weight for e in entries]
    return della(deltas, weights, params.required_density(), epsilon, params.majority_sign, seeds), {}


def weighted_sum(
    deltas: Deltas, entries: Sequence[Entry], params: MethodParams, path: str, norms: torch.Tensor | None
) -> tuple[torch.Tensor, dict[str, Any]]:
    """sum_i w_i D_i: what every factor-space method is on (IA)3 vectors."""
    merged = sum(e.weight * d for e, d in zip(entries, deltas(), strict=True))
    assert isinstance(merged, torch.Tensor)
    return merged, {}


DENSE_RULES: dict[str, DenseRule] = {
    "ties": _prune,
    "dare_linear": _prune,
    "dare_ties": _prune,
    "magnitude_prune": _prune,
    "core_merge": _core,
    "breadcrumbs": _breadcrumbs,
    "della": _della,
}


def dense_rule(name: str) -> DenseRule | None:
    """The rule of dense method `name`: built in, or a plugin's function behind the same signature."""
    rule = DENSE_RULES.get(name)
    if rule is None and (fn := plugin_function(name)) is not None:
        rule = _plugin_rule(fn)
        DENSE_RULES[name] = rule
    return rule


def _plugin_rule(fn: Callable[..., torch.Tensor]) -> DenseRule:
    """A plugin gets the weighted T_i of one module (float32, on the engine's device) and its params."""

    def rule(
        deltas: Deltas, entries: Sequence[Entry], params: MethodParams, path: str, norms: torch.Tensor | None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        method = get_method(params.method)
        kwargs = method.resolved_params(params.extra) if method is not None else {}
        weighted = [e.weight * d for e, d in zip(entries, deltas(), strict=True)]
        return fn(weighted, **kwargs), {}

    return rule


def dense_names() -> frozenset[str]:
    """Every method with a dense rule: the built-in ones and the plugins'."""
    return frozenset(DENSE_RULES) | {m.name for m in all_methods() if plugin_function(m.name) is not None}
