"""What the real-model demo trains and composes: adapters, budgets and the scenarios' specs.

Specs are built here (not shipped as files) because each names one evaluation per held-out document;
the demo writes every spec it runs to `<out>/specs/` so it can be read and rerun with `pemreg compose`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

NAMESPACE = "real"


@dataclass(frozen=True)
class Budget:
    n_test: int  # held-out documents per domain
    n_val: int  # validation documents per domain (the unlearning search)
    window: int  # tokens scored per held-out document
    seq: int  # training block length
    batch: int
    lora_steps: int
    ia3_steps: int
    lora_layers: int | None  # LoRA on the top N of the 30 layers (None: all): less backward, fewer modules
    train_tokens: int  # per training set (tokenised once, cached)
    lambdas: tuple[float, ...]  # the unlearning grid
    prompts: int  # generations for the style rate
    prompt_tokens: int
    new_tokens: int


FULL = Budget(
    n_test=30,
    n_val=10,
    window=96,
    seq=128,
    batch=4,
    lora_steps=30,
    ia3_steps=30,
    lora_layers=None,
    train_tokens=40_000,
    lambdas=(0.05, 0.1, 0.2, 0.4),
    prompts=12,
    prompt_tokens=32,
    new_tokens=48,
)
QUICK = Budget(
    n_test=6,
    n_val=3,
    window=48,
    seq=128,
    batch=2,
    lora_steps=12,
    ia3_steps=12,
    # The top third: a training step costs 25% less (the backward stops at layer 20) and composing,
    # loading and comparing the LoRAs a third (70 modules, not 210); quick mode's budget is minutes.
    lora_layers=10,
    train_tokens=20_000,
    lambdas=(0.2, 0.5),
    prompts=3,
    prompt_tokens=24,
    new_tokens=16,
)


@dataclass(frozen=True)
class AdapterPlan:
    name: str
    train_set: str  # code-a | code-b | prose | licence | shell
    kind: str  # lora | ia3
    lr: float

    @property
    def domain(self) -> str:
        return self.train_set.split("-")[0]


ADAPTERS = [
    AdapterPlan("code-a", "code-a", "lora", 2e-3),  # also "the code adapter" of the other settings
    AdapterPlan("code-b", "code-b", "lora", 2e-3),
    AdapterPlan("prose", "prose", "lora", 2e-3),
    AdapterPlan("licence", "licence", "lora", 2e-3),
    AdapterPlan("shell", "shell", "lora", 2e-3),
    AdapterPlan("code-ia3", "code-a", "ia3", 3e-2),
    AdapterPlan("prose-ia3", "prose", "ia3", 3e-2),
]
QUICK_ADAPTERS = {"code-a", "code-b", "prose"}
DOMAIN_OF = {a.name: a.domain for a in ADAPTERS}


@dataclass(frozen=True)
class PairMethod:
    """One way of summing a pair; the interference analysis runs once per entry. To add a method
    (e.g. `core_merge`, or decoding-time composition) append an entry: `fields` go into the spec."""

    label: str  # suffix of the output name
    fields: dict[str, Any] = field(default_factory=dict)
    weights: tuple[float, float] = (1.0, 1.0)


# Core fraction per input for `core_merge`; rank 16 = the two inputs' ranks together. Not lossless: the
# core masks make the summed delta (nearly) full rank, so the SVD to rank 16 truncates it, and a core
# entry keeps one input's value and drops the other's. A review measured, on matched synthetic LoRAs, about
# 0.86x the exact sum's norm: part of any `core` win over `cat` can be shrinkage, which a scaled-sum control
# would separate (not in this plan yet).
CORE_DENSITY = 0.2
CORE_RANK = 16
# The exact sum is also evaluated at decoding time (compare_decoding): the gap between the two is the
# pair's measured interference cost; `core_merge` is the sum with each input's core isolated.
PAIR_METHODS = [
    PairMethod("cat", {"method": "delta_cat", "compare_decoding": True}),
    PairMethod("core", {"method": "core_merge", "density": CORE_DENSITY, "rank": CORE_RANK}),
]
# Every pair of the four domain LoRAs: the interference analysis needs at least 6 points.
SUM_PAIRS = [
    ("code-a", "prose"),
    ("code-a", "licence"),
    ("code-a", "shell"),
    ("prose", "licence"),
    ("prose", "shell"),
    ("licence", "shell"),
]
QUICK_SUM_PAIRS = [("code-a", "prose")]
UNLEARN = "code-a"  # the unwanted style: Python code
UNLEARN_GATE_SLACK = 0.05  # every other domain's validation perplexity within 5% of the base


@dataclass(frozen=True)
class Planned:
    scenario: str
    spec: dict[str, Any]


def ref(name: str) -> str:
    return f"{NAMESPACE}/{name}"


def scenarios(
    quick: bool,
    evaluate: list[dict[str, str]],
    val: dict[str, str],
    base_val: dict[str, float],
    budget: Budget,
) -> list[Planned]:
    """The specs in table order. `evaluate`: one entry per test document; `val`: domain -> val dataset."""

    def spec(name: str, description: str, **fields: Any) -> dict[str, Any]:
        return {"name": ref(name), "description": description, **fields, "evaluate": evaluate}

    out = [
        Planned(
            "distribution generalization",
            spec(
                "code-halves-merged",
                "two code LoRAs trained on disjoint halves of the stdlib files, 0.5/0.5",
                method="linear",
                expression=f"0.5 * {ref('code-a')} + 0.5 * {ref('code-b')}",
            ),
        )
    ]
    if not quick:
        a, b = ref("code-a"), ref("prose")
        out += [
            Planned(
                "multi-tasking",
                spec(
                    "code-prose-linear",
                    "code + prose, the paper's lambda-merge",
                    method="linear",
                    expression=f"0.5 * {a} + 0.5 * {b}",
                ),
            ),
            Planned(
                "multi-tasking",
                spec(
                    "code-prose-svd",
                    "code + prose, exact sum truncated to rank 8",
                    method="delta_svd",
                    rank=8,
                    expression=f"{a} + {b}",
                ),
            ),
        ]
    for x, y in QUICK_SUM_PAIRS if quick else SUM_PAIRS:
        for pm in PAIR_METHODS:
            wx, wy = pm.weights
            out.append(
                Planned(
                    "multi-tasking",
                    spec(
                        f"sum-{x}-{y}-{pm.label}",
                        f"{x} + {y} ({pm.label})",
                        **pm.fields,
                        expression=f"{wx:g} * {ref(x)} + {wy:g} * {ref(y)}",
                    ),
                )
            )
    gate = [
        {"evaluation": f"val-{d}", "max": round(v * (1 + UNLEARN_GATE_SLACK), 6)}
        for d, v in base_val.items()
        if d != DOMAIN_OF[UNLEARN]
    ]
    forget = spec(
        "forget-code",
        "the base with Python code style unlearned (negated code LoRA, lambda by a gated search)",
        method="delta_cat",
        expression=f"-1.0 * {ref(UNLEARN)}",
        search={
            "strategy": "grid",
            "weights": {ref(UNLEARN): [-x for x in budget.lambdas]},
            "objective": {"evaluation": f"val-{DOMAIN_OF[UNLEARN]}", "goal": "maximize"},
        },
        gate=gate,
    )
    forget["evaluate"] = evaluate + [
        {"name": f"val-{d}", "metric": "perplexity", "dataset": uri} for d, uri in val.items()
    ]
    out.append(Planned("unlearning", forget))
    if not quick:
        out += [
            Planned(
                "analogy",
                spec(
                    "analogy",
                    "prose - code + licence",
                    method="delta_cat",
                    expression=f"{ref('prose')} - {ref('code-a')} + {ref('licence')}",
                ),
            ),
            Planned(
                "(IA)3 merge",
                spec(
                    "ia3-code-prose",
                    "code (IA)3 + prose (IA)3",
                    method="linear",
                    expression=f"{ref('code-ia3')} + {ref('prose-ia3')}",
                ),
            ),
        ]
    return out
