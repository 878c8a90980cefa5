"""Gates: register only if every condition holds. Pure: metrics in, failures out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..spec import GateSpec

# Each metric's direction, the one place it is stated (gates, the decoding comparison).
LOWER_IS_BETTER = {"perplexity": True, "accuracy": False}


def check_gates(
    gates: Sequence[GateSpec],
    result: Mapping[str, float],
    metric_of: Mapping[str, str],
    parents: Mapping[str, Mapping[str, float]],
) -> list[str]:
    """`parents`: adapter name -> {evaluation name: value}. Returns one line per failed gate."""
    failures: list[str] = []
    for gate in gates:
        value = result[gate.evaluation]
        if gate.max is not None and value > gate.max:
            failures.append(f"{gate.evaluation} = {value:.6g} > max {gate.max:g}")
        if gate.min is not None and value < gate.min:
            failures.append(f"{gate.evaluation} = {value:.6g} < min {gate.min:g}")
        if gate.max_regression_vs is not None:
            reference = parents[gate.max_regression_vs][gate.evaluation]
            by = gate.by or 0.0
            if LOWER_IS_BETTER[metric_of[gate.evaluation]]:
                limit = reference * (1 + by)
                if value > limit:
                    failures.append(
                        f"{gate.evaluation} = {value:.6g} regresses more than {by:.0%} vs "
                        f"{gate.max_regression_vs} ({reference:.6g}; limit {limit:.6g})"
                    )
            else:
                limit = reference * (1 - by)
                if value < limit:
                    failures.append(
                        f"{gate.evaluation} = {value:.6g} regresses more than {by:.0%} vs "
                        f"{gate.max_regression_vs} ({reference:.6g}; limit {limit:.6g})"
                    )
    return failures
