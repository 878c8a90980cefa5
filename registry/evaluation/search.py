"""Lambda search strategies: grid, random, and nevergrad's NGOpt (gradient-free, as LoraHub).

A strategy proposes candidates (weights for the searched inputs) in batches and is told each
candidate's objective; the flow evaluates every candidate as its own task.
"""

from __future__ import annotations

import itertools
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
        keys = list(self.spec.weights)
        combos = itertools.product(*(self.spec.weights[k] for k in keys))
        yield [Candidate(i, dict(zip(keys, combo, strict=True))) for i, combo in enumerate(combos)]


class Random(Strategy):
    def batches(self) -> Any:
        rng = random.Random(self.seed)
        budget = self.spec.budget or DEFAULT_BUDGET
        bounds = {k: (min(v), max(v)) for k, v in self.spec.weights.items()}
        yield [
            Candidate(i, {k: rng.uniform(lo, hi) for k, (lo, hi) in bounds.items()}) for i in range(budget)
        ]


class NeverGrad(Strategy):
    batch_size = 2  # two cores: two candidates evaluated at a time

    def batches(self) -> Any:
        import nevergrad as ng

        keys = list(self.spec.weights)
        bounds = [(min(self.spec.weights[k]), max(self.spec.weights[k])) for k in keys]
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


STRATEGIES: dict[str, type[Strategy]] = {"grid": Grid, "random": Random, "nevergrad": NeverGrad}


def make_strategy(spec: SearchSpec, seed: int) -> Strategy:
    return STRATEGIES[spec.strategy](spec, seed)
