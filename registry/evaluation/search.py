"""Search strategies over the weights: grid, random, and nevergrad's NGOpt (gradient-free, as LoraHub).

A strategy proposes candidates (weights for the searched inputs) in batches and is told each
candidate's objective; the flow evaluates every candidate as its own task. The search space is
`search.methods` x `search.scale` x the strategy's weight candidates: one strategy runs per (method,
scale) pair (`arms`), so nevergrad adapts the weights to each method on its own. Without
`search.weights` the weights are the spec's, one candidate per pair.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..spec import SearchSpec

DEFAULT_BUDGET = 8


@dataclass
class Candidate:
    index: int
    weights: dict[str, float]  # searched ref (as written in `search.weights`) -> weight
    token: Any = None  # the optimizer's handle, for tell()


@dataclass
class Strategy:
    spec: SearchSpec
    seed: int
    told: list[tuple[Candidate, float]] = field(default_factory=list)

    @property
    def space(self) -> dict[str, list[float]]:
        """`search.weights` (empty without it)."""
        return self.spec.weights or {}

    def batches(self) -> Any:
        """Yields lists of candidates; after each batch the caller calls tell() for each."""
        raise NotImplementedError

    def tell(self, candidate: Candidate, value: float) -> None:
        self.told.append((candidate, value))

    def loss(self, value: float) -> float:
        return value if self.spec.objective.goal == "minimize" else -value

    def best(self, feasible: Callable[[Candidate], bool] = lambda _c: True) -> tuple[Candidate, float]:
        """Best by the objective among feasible candidates (all, if none is feasible)."""
        pool = [cv for cv in self.told if feasible(cv[0])] or self.told
        return min(pool, key=lambda cv: (self.loss(cv[1]), cv[0].index))


class Grid(Strategy):
    def batches(self) -> Any:
        keys = list(self.space)
        combos = itertools.product(*(self.space[k] for k in keys))
        yield [Candidate(i, dict(zip(keys, combo, strict=True))) for i, combo in enumerate(combos)]


class Random(Strategy):
    def batches(self) -> Any:
        rng = random.Random(self.seed)
        budget = self.spec.budget or DEFAULT_BUDGET
        bounds = {k: (min(v), max(v)) for k, v in self.space.items()}
        yield [
            Candidate(i, {k: rng.uniform(lo, hi) for k, (lo, hi) in bounds.items()}) for i in range(budget)
        ]


class NeverGrad(Strategy):
    batch_size = 2  # two cores: two candidates evaluated at a time

    def batches(self) -> Any:
        import nevergrad as ng

        keys = list(self.space)
        bounds = [(min(self.space[k]), max(self.space[k])) for k in keys]
        params = ng.p.Instrumentation(
            *[
                ng.p.Scalar(init=(lo + hi) / 2, lower=lo, upper=hi) if hi > lo else ng.p.Constant(lo)
                for lo, hi in bounds
            ]
        )
        params.random_state.seed(self.seed)
        budget = self.spec.budget or DEFAULT_BUDGET
        optimizer = ng.optimizers.NGOpt(parametrization=params, budget=budget, num_workers=self.batch_size)
        index = 0
        while index < budget:
            batch = []
            for _ in range(min(self.batch_size, budget - index)):
                token = optimizer.ask()
                batch.append(
                    Candidate(index, {k: float(v) for k, v in zip(keys, token.args, strict=True)}, token)
                )
                index += 1
            yield batch
            for cand, value in self.told[-len(batch) :]:
                optimizer.tell(cand.token, self.loss(value))


class Written(Strategy):
    """No `search.weights`: the spec's weights, one candidate."""

    def batches(self) -> Any:
        yield [Candidate(0, {})]


STRATEGIES: dict[str, type[Strategy]] = {"grid": Grid, "random": Random, "nevergrad": NeverGrad}


def make_strategy(spec: SearchSpec, seed: int) -> Strategy:
    if spec.weights is None:
        return Written(spec, seed)
    return STRATEGIES[spec.strategy](spec, seed)


@dataclass(frozen=True)
class Arm:
    """One (method, scale) pair of the search space; the weight strategy runs within it."""

    method: str
    scale: float


def arms(spec: SearchSpec, method: str) -> list[Arm]:
    """`search.methods` (else the spec's `method`) x `search.scale` (else 1.0), in the spec's order."""
    return [Arm(m, c) for m in (spec.methods or [method]) for c in (spec.scale or [1.0])]


def weight_candidates(spec: SearchSpec) -> int:
    """How many weight candidates one arm evaluates."""
    if spec.weights is None:
        return 1
    if spec.strategy == "grid":
        return math.prod(len(v) for v in spec.weights.values())
    return spec.budget or DEFAULT_BUDGET


def candidate_count(spec: SearchSpec, method: str) -> int:
    return len(arms(spec, method)) * weight_candidates(spec)


def best_index(values: dict[int, float], feasible: dict[int, bool], goal: str) -> int:
    """The best candidate by the objective among those passing the gates (all, if none does); ties go
    to the lower index."""
    pool = [i for i in values if feasible[i]] or list(values)
    sign = 1.0 if goal == "minimize" else -1.0
    return min(pool, key=lambda i: (sign * values[i], i))
