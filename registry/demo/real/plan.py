"""What the real-model demo trains and composes: adapters, budgets and the scenarios' specs.

Specs are built here (not shipped as files) because each names one evaluation per held-out document;
the demo writes every spec it runs to `<out>/specs/` so it can be read and rerun with `pemreg compose`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

NAMESPACE = "real"
GENERIC = "generic"  # the training set and domain of the adapter trained on every domain
UNION = "code"  # the distribution-generalization reference: trained on both code sub-distributions


@dataclass(frozen=True)
class Budget:
    n_test: int  # held-out documents per domain
    n_val: int  # validation documents per domain (the unlearning search)
    window: int  # tokens scored per held-out document
    seq: int  # training block length
    batch: int
    lora_steps: int
    ia3_steps: int
    task_steps: int  # the generated tasks' LoRAs (tasks.py): short items, an easy rule
    task_test: int  # test items per generated task (one evaluation each)
    task_val: int  # validation items per generated task (pooled)
    lora_layers: int | None  # LoRA on the top N of the 30 layers (None: all): less backward, fewer modules
    train_tokens: int  # per training set (tokenised once, cached)
    lambdas: tuple[float, ...]  # the unlearning grid
    prompts: int  # generations for the style rate
    prompt_tokens: int
    new_tokens: int


FULL = Budget(
    n_test=30,
    n_val=10,
    # 64 tokens, the low end of the 64-96: every evaluation of the sweep scores 4 x 30 windows,
    # and a forward's cost is linear in them (96 would cost the full run 50% more evaluation time).
    window=64,
    seq=128,
    batch=4,
    lora_steps=30,
    ia3_steps=30,
    # 30, not 20: at 20 the task LoRAs reach 0.73 (kind) / 0.64-0.67 (mood) in bf16 and in fp32 alike,
    # at 30 steps 0.95 (kind; benchmarks/demo_real_tasks_pilot.md): steps, not precision, were short.
    task_steps=30,
    task_test=100,
    task_val=30,
    # The top third, as in quick mode (below): 7 LoRAs instead of 5 at about the old cost of 5.
    lora_layers=10,
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
    task_steps=8,  # quick mode checks the pipeline: at its budget the task LoRAs stay near chance
    task_test=40,
    task_val=20,
    # The top third: a training step costs 25% less (the backward stops at layer 20) and composing,
    # loading and comparing the LoRAs a third (70 modules, not 210); quick mode's budget is minutes.
    lora_layers=10,
    train_tokens=20_000,
    lambdas=(0.05, 0.2),
    prompts=3,
    prompt_tokens=24,
    new_tokens=16,
)


@dataclass(frozen=True)
class AdapterPlan:
    name: str
    train_set: str  # code-a | code-b | prose | licence | shell | generic
    kind: str  # lora | ia3
    lr: float
    seed: int = 0  # added to the run's training seed: the batch order (lora_A's init is shared, train.py)
    # In the pair sweep and its correlation (LoRAs only). Not: the union reference (code-a + code-b's
    # data: its pairs with them would measure a near-copy, not two skills) and the task adapters.
    swept: bool = True

    @property
    def domain(self) -> str:
        return self.train_set.split("-")[0]


# The domain-transfer task (tasks.tone_set: sentiment of an adjective, in prose phrases and inside code
# identifiers; the pilot, benchmarks/demo_real_transfer_pilot.md, chose it over the line rules, which
# did not learn) and its adapter, trained on the source domain's items.
TRANSFER_TASK = "tone"
TRANSFER = f"{TRANSFER_TASK}-prose"
ADAPTERS = [
    # The two code sub-distributions (corpora.subdistributions): files of stdlib packages, top-level
    # modules. code-a is also "the code adapter" of the other settings.
    AdapterPlan("code-a", "code-a", "lora", 2e-3),
    AdapterPlan("code-b", "code-b", "lora", 2e-3),
    # The distribution-generalization reference: trained on the union of the two sub-distributions.
    AdapterPlan(UNION, "code", "lora", 2e-3, swept=False),
    AdapterPlan("prose", "prose", "lora", 2e-3),
    AdapterPlan("licence", "licence", "lora", 2e-3),
    AdapterPlan("shell", "shell", "lora", 2e-3),
    # The shared-component reference: trained on every domain's training documents (interleaved).
    AdapterPlan("generic", GENERIC, "lora", 2e-3),
    # A second seed of the adapter P1-P5 rest on: the seed-to-seed spread beside every difference, and
    # the 7th LoRA P6 needs (21 pairs; Mantel's smallest p with 7 adapters is 1/5040).
    AdapterPlan("code-a-s2", "code-a", "lora", 2e-3, seed=1),
    AdapterPlan("code-ia3", "code-a", "ia3", 3e-2),
    AdapterPlan("prose-ia3", "prose", "ia3", 3e-2),
    # The generated tasks (tasks.py), each a LoRA on its own trigger's items: the multi-task pair, and
    # the domain-transfer task trained on items cut from prose documents only.
    AdapterPlan("kind", "task-kind", "lora", 2e-3, swept=False),
    AdapterPlan("mood", "task-mood", "lora", 2e-3, swept=False),
    # Their second seeds (full mode): P7's seed-to-seed spread, the second seed's merge beside the first.
    AdapterPlan("kind-s2", "task-kind", "lora", 2e-3, seed=1, swept=False),
    AdapterPlan("mood-s2", "task-mood", "lora", 2e-3, seed=1, swept=False),
    AdapterPlan(TRANSFER, f"task-{TRANSFER_TASK}", "lora", 2e-3, swept=False),
]
QUICK_ADAPTERS = {"code-a", "code-b", "prose", "licence", "kind", "mood", TRANSFER}
TASK = "task"  # the domain of the task adapters' training sets: no perplexity domain of the corpora
MULTITASK = ("kind", "mood")  # the two trigger tasks of the multi-task setting
MULTITASK_S2 = ("kind-s2", "mood-s2")  # their second seeds (full mode); P7's verdict rests on the first
TASK_OF = {"kind-s2": "kind", "mood-s2": "mood"}  # a second seed's task (item set)
SEED2 = "multi-task, seed 2"  # the scenario of the second seeds' 0.5/0.5 merge
TRANSFER_SOURCE, TRANSFER_TARGET = "prose", "code"  # the task's source and target domains
# LM_target - LM_source: the domain LoRAs whose difference is added to the task adapter.
TRANSFER_LMS = ("code-a", "prose")
TRANSFER_SCALES = (0.0, 0.1, 0.2, 0.4)  # c, chosen on the target's validation items (the paper's range)
# Quick mode searches the ends of that range only: each candidate is a flow task with its evaluations,
# and the quick test's budget is minutes.
QUICK_TRANSFER_SCALES = (0.0, 0.4)
DOMAIN_OF = {a.name: a.domain for a in ADAPTERS}


def pair_domains(da: str, db: str) -> tuple[str, str]:
    """The own domains a pair's retention is measured on: each parent's domain, except that `generic`
    (no domain of its own) is measured on its partner's (scoring it on all four would double the
    sweep's evaluations)."""
    return (db if da == GENERIC else da, da if db == GENERIC else db)


@dataclass(frozen=True)
class PairMethod:
    """One way of summing a pair; the interference analysis runs once per entry. To add a method
    (e.g. `core_merge`, or decoding-time composition) append an entry: `fields` go into the spec."""

    label: str  # suffix of the output name
    fields: dict[str, Any] = field(default_factory=dict)
    weights: tuple[float, float] = (1.0, 1.0)


# Core fraction per input for `core_merge`; rank 16 = the two inputs' ranks together. Not lossless: the
# core masks make the summed delta (nearly) full rank, so the SVD to rank 16 truncates it, and a core
# entry keeps one input's value and drops the other's; on matched synthetic LoRAs the result is about
# 0.86x the exact sum's norm. So `core_merge` is compared with the scaled sum c = 0.85 (CORE_CONTROL_SCALE,
# the control nearest that shrinkage) beside the exact sum: a win over c = 1 that c = 0.85 also has is
# shrinkage, not isolation. The report's P3 and each pair's line say which it is on this model.
CORE_DENSITY = 0.2
CORE_RANK = 16
CORE_CONTROL_SCALE = 0.85
# Through the product (registered, evaluated by the flow): `core_merge` of each pair in SUM_PAIRS.
PAIR_METHODS = [
    PairMethod("core", {"method": "core_merge", "density": CORE_DENSITY, "rank": CORE_RANK}),
]
SUM_PAIRS = [
    ("code-a", "prose"),
    ("code-a", "licence"),
    ("code-a", "shell"),
    ("prose", "licence"),
    ("prose", "shell"),
    ("licence", "shell"),
]
QUICK_SUM_PAIRS = [("code-a", "prose")]
# In process (sweep.py), for EVERY pair of the LoRAs trained: the scaled sums c (x + y) and decoding
# time at w/w, on the two parents' own domains.
SCALES = (0.5, 0.7, CORE_CONTROL_SCALE, 1.0)
DECODING = (0.5, 1.0)
MAIN_PAIR = ("code-a", "prose")  # the pair the primary claims P2-P4 rest on
# Mantel's smallest p with n adapters is 1/n!: 5 adapters give 1/120 = 0.008, above P6's Bonferroni
# threshold 0.05/11 = 0.0045, so P6 cannot hold with fewer than 6 (6: 1/720); the full run has 7 LoRAs.
MIN_CORRELATION_ADAPTERS = 6
# The product's newer methods in the full run's pair sweep, composed in process by the engine
# (`registry.compose.compose`) from the registered parents and evaluated with the resident model
# (sweep.method_controls) at their own scale chosen on validation (TUNED_METHODS), on SUM_PAIRS.
# Not also at scale 1: beside the exact sum that compares two untuned scales, and it was one more
# test evaluation per method and pair (a quarter of the sweep's tuning cost).
# `ties` and KnOTS-TIES keep the TIES paper's default top 20% (not tuned); rank 16 = the two inputs'.
SWEEP_METHODS = [
    PairMethod("ties", {"method": "ties", "density": CORE_DENSITY, "rank": CORE_RANK}),
    PairMethod("knots", {"method": "knots", "density": CORE_DENSITY, "params": {"merge": "ties"}}),
    PairMethod("tsv", {"method": "tsv"}),
    PairMethod("iso_c", {"method": "iso_c"}),
]
# Each method at its own scale, chosen on the pair's pooled validation documents from TUNE_SCALES (the
# scaled sum's c from the same grid): the fair form of every method claim, so that no method wins or
# loses by a scale the other was not given. The result times s is the product's `search.scale`.
# Quick mode tunes the scaled sum and `core_merge` on its one pair (P3 rests on them).
TUNE_SCALES = SCALES
TUNED_METHODS = PAIR_METHODS + SWEEP_METHODS
QUICK_TUNED_METHODS = PAIR_METHODS
# One setting through the product's own method search (`search.methods` x `search.scale`, full run):
# MAIN_PAIR at 1/1, each method at each scale, the winner by the pooled validation perplexity of the
# pair's own domains. Its candidates' validation perplexities are printed beside the sweep's in-process
# values for the same method and scale (the two evaluation paths must agree).
SEARCH_METHODS = ("delta_cat", "core_merge", "ties")  # delta_cat at scale c: the scaled sum


def pair_controls(x: str, y: str, quick: bool) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(scales, decoding weights) the sweep evaluates for the pair (x, y): every control beside the
    pairs a method claim is made on (composed by `core_merge` through the product and, in the full run,
    by SWEEP_METHODS); the exact sum (c = 1) alone for every other pair, which is what the correlation
    (P6) needs (the full set for the other 15 pairs would add 150 evaluations to the full run)."""
    if (x, y) in (QUICK_SUM_PAIRS if quick else SUM_PAIRS):
        return SCALES, DECODING
    return (1.0,), ()


def tuned_methods(quick: bool) -> list[PairMethod]:
    return QUICK_TUNED_METHODS if quick else TUNED_METHODS


def pair_val_key(x: str, y: str) -> str:
    """The evaluation name of a pair's pooled validation documents (both own domains)."""
    return "val-" + "+".join(dict.fromkeys(pair_domains(DOMAIN_OF[x], DOMAIN_OF[y])))


def tune_pairs(quick: bool) -> list[tuple[str, str]]:
    """The pairs whose variants are also scored at their validation-chosen scales (the method claims')."""
    return QUICK_SUM_PAIRS if quick else SUM_PAIRS


# The primary claims, stated before the run and printed before any result. Each is tested at the level
# 1 - 0.05 / PRIMARY_INTERVALS (Bonferroni over every interval or test they contain).
PRIMARY = [
    (
        "P1",
        "distribution generalization: the 0.5/0.5 merge of the LoRAs of two code sub-distributions "
        "(package files, top-level modules) has lower perplexity on the code mixture than each of them "
        "(2 intervals)",
    ),
    (
        "P2",
        f"multi-task retention: the exact sum of {MAIN_PAIR[0]} and {MAIN_PAIR[1]} keeps each parent's "
        "own-domain perplexity within +5% (non-inferiority, 2 intervals)",
    ),
    (
        "P3",
        f"core_merge of {MAIN_PAIR[0]} and {MAIN_PAIR[1]} beats the scaled sum, each at its own scale "
        f"chosen on validation (s and c in {{{', '.join(f'{c:g}' for c in TUNE_SCALES)}}}), on the "
        "pair's own domains: isolation, not shrinkage (1 interval)",
    ),
    (
        "P4",
        "decoding time at 0.5/0.5 beats the weight-space 0.5/0.5 sum (scaled sum c = 0.5) on the "
        "pair's own domains: a positive interference cost (1 interval)",
    ),
    (
        "P5",
        "unlearning: the negated licence LoRA (lambda chosen on validation: the largest licence "
        "perplexity with every other domain within +2%) raises licence perplexity, and every other "
        "domain stays within +2% (4 intervals)",
    ),
    (
        "P6",
        "interference: over the pairs of LoRAs, the RMS cosine of the deltas correlates positively "
        "with the exact sum's own-domain loss (Pearson r > 0, Mantel permutation test; 1 test)",
    ),
    (
        "P7",
        f"multi-task: the 0.5/0.5 merge of the {MULTITASK[0]} and {MULTITASK[1]} task LoRAs keeps each "
        "task's accuracy within 5 points of that task's own LoRA (non-inferiority, 2 intervals; the "
        "first seed's adapters; full mode shows the second seed's merge beside it)",
    ),
    (
        "P8",
        f"domain transfer: {TRANSFER} + c (LM_{TRANSFER_TARGET} - LM_{TRANSFER_SOURCE}), c chosen on "
        f"validation, is more accurate on {TRANSFER_TARGET} items than {TRANSFER} alone (1 interval)",
    ),
]
PRIMARY_INTERVALS = 14
UNLEARN = "licence"  # the unwanted behaviour: licence boilerplate
UNLEARN_GATE_SLACK = 0.02  # every other domain's validation perplexity within 2% of the base
TASK_MARGIN = 0.05  # P7: "within 5 points" of accuracy


def sweep_pairs(wanted: list[AdapterPlan], quick: bool) -> list[tuple[str, str]]:
    """Every pair of the LoRAs trained in this run, in ADAPTERS order (the sweep and the correlation);
    quick mode sweeps MAIN_PAIR only (its 3 LoRAs could not test a correlation anyway, and each pair
    adds evaluations to the quick test's recomputation)."""
    if quick:
        return [MAIN_PAIR]
    names = [a.name for a in wanted if a.kind == "lora" and a.swept]
    return [(x, y) for i, x in enumerate(names) for y in names[i + 1 :]]


@dataclass(frozen=True)
class TaskData:
    """A generated task's held-out files (runner._prepare): one `accuracy` evaluation per test item
    (so the flow's metrics give per-item correctness for paired intervals) and the pooled validation
    items (the transfer search's objective)."""

    test: list[dict[str, str]]
    val: str  # dataset URI


def transfer_key(domain: str) -> str:
    """The name of the transfer task's item set in `domain` (its evaluations: `<key>.<nnn>`)."""
    return f"{TRANSFER_TASK}-{domain}"


@dataclass(frozen=True)
class Planned:
    scenario: str
    spec: dict[str, Any]


def ref(name: str) -> str:
    return f"{NAMESPACE}/{name}"


def pair_method_name(x: str, y: str, pm: PairMethod) -> str:
    """The name of the flow's composition of the pair (x, y) by `pm` (PAIR_METHODS, on the sum pairs)."""
    return f"sum-{x}-{y}-{pm.label}"


def scenarios(
    quick: bool,
    evaluate: dict[str, list[dict[str, str]]],
    val: dict[str, str],
    base_val: dict[str, float],
    budget: Budget,
    tasks: dict[str, TaskData],
    pair_val: str = "",
) -> list[Planned]:
    """The specs in table order. `evaluate`: domain -> one evaluation per test document; `val`: domain
    -> validation dataset; `pair_val`: MAIN_PAIR's pooled validation dataset (the method search's).
    Each spec evaluates the domains its claims read (a pair: its two own domains; unlearning: every
    domain), so no evaluation is run that no verdict uses."""

    def spec(name: str, description: str, domains: list[str], **fields: Any) -> dict[str, Any]:
        evals = [e for d in dict.fromkeys(domains) for e in evaluate[d]]
        return {"name": ref(name), "description": description, **fields, "evaluate": evals}

    out = [
        Planned(
            "distribution generalization",
            spec(
                "code-halves-merged",
                "two code LoRAs trained on disjoint sub-distributions of the stdlib (package files, "
                "top-level modules), 0.5/0.5; tested on the mixture",
                ["code"],
                method="linear",
                expression=f"0.5 * {ref('code-a')} + 0.5 * {ref('code-b')}",
            ),
        )
    ]
    for x, y in QUICK_SUM_PAIRS if quick else SUM_PAIRS:
        for pm in PAIR_METHODS:
            wx, wy = pm.weights
            out.append(
                Planned(
                    "multi-tasking",
                    spec(
                        pair_method_name(x, y, pm),
                        f"{x} + {y} ({pm.label})",
                        list(pair_domains(DOMAIN_OF[x], DOMAIN_OF[y])),
                        **pm.fields,
                        expression=f"{wx:g} * {ref(x)} + {wy:g} * {ref(y)}",
                    ),
                )
            )
    if not quick:
        x, y = MAIN_PAIR
        key = pair_val_key(x, y)
        searched = spec(
            f"search-{x}-{y}",
            f"{x} + {y}: the product's search over methods x scales, on validation",
            [],
            method=SEARCH_METHODS[0],
            expression=f"1 * {ref(x)} + 1 * {ref(y)}",
            density=CORE_DENSITY,
            rank=CORE_RANK,
            search={
                "methods": list(SEARCH_METHODS),
                "scale": list(TUNE_SCALES),
                "objective": {"evaluation": key, "goal": "minimize"},
            },
        )
        # validation only: every candidate evaluates the spec's evaluations, and the test documents of
        # each method at its chosen scale are the sweep's (sweep.method_controls with tuning)
        searched["evaluate"] = [{"name": key, "metric": "perplexity", "dataset": pair_val}]
        out.append(Planned("method search", searched))
    gate = [
        {"evaluation": f"val-{d}", "max": round(v * (1 + UNLEARN_GATE_SLACK), 6)}
        for d, v in base_val.items()
        if d != DOMAIN_OF[UNLEARN]
    ]
    forget = spec(
        f"forget-{DOMAIN_OF[UNLEARN]}",
        f"the base with the {DOMAIN_OF[UNLEARN]} LoRA's behaviour unlearned (negated, lambda by a gated "
        "search on validation)",
        list(evaluate),
        method="delta_cat",
        expression=f"-1.0 * {ref(UNLEARN)}",
        search={
            "strategy": "grid",
            "weights": {ref(UNLEARN): [-x for x in budget.lambdas]},
            "objective": {"evaluation": f"val-{DOMAIN_OF[UNLEARN]}", "goal": "maximize"},
        },
        gate=gate,
    )
    forget["evaluate"] += [
        {"name": f"val-{d}", "metric": "perplexity", "dataset": uri} for d, uri in val.items()
    ]
    out.append(Planned("unlearning", forget))
    # The 0.5/0.5 merge, and its control: the exact sum, what 0.5/0.5 halves (the pilot: 0.5/0.5 lost
    # most of each task's accuracy, 1/1 kept most of it), so P7's verdict can be read as the merge's or
    # the weights'. Full mode: the second seeds' 0.5/0.5 merge beside it (the seed-to-seed spread).
    merges = [
        ("multi-task", "tasks-merged", "the paper's 0.5/0.5 merge", "linear", 0.5, MULTITASK),
        (
            "multi-task, exact sum",
            "tasks-summed",
            "the exact sum 1/1 (the 0.5/0.5 merge's control)",
            "delta_cat",
            1.0,
            MULTITASK,
        ),
    ]
    if not quick:
        merges.append(
            (SEED2, "tasks-merged-s2", "second seeds, the paper's 0.5/0.5 merge", "linear", 0.5, MULTITASK_S2)
        )
    for scenario, name, how, method, w, (x, y) in merges:
        task_spec = spec(
            name,
            f"the {x} and {y} task LoRAs (own triggers), {how}",
            [],
            method=method,
            expression=f"{w:g} * {ref(x)} + {w:g} * {ref(y)}",
        )
        task_spec["evaluate"] = tasks[TASK_OF.get(x, x)].test + tasks[TASK_OF.get(y, y)].test
        out.append(Planned(scenario, task_spec))
    lm_t, lm_s = TRANSFER_LMS
    out.append(
        Planned(
            "domain vector",
            spec(
                "domain-vector",
                f"LM_{TRANSFER_TARGET} - LM_{TRANSFER_SOURCE}: {lm_t} - {lm_s}, the difference the "
                "domain transfer adds",
                [],
                method="delta_cat",
                expression=f"{ref(lm_t)} - {ref(lm_s)}",
            ),
        )
    )
    target, source = tasks[transfer_key(TRANSFER_TARGET)], tasks[transfer_key(TRANSFER_SOURCE)]
    scales = QUICK_TRANSFER_SCALES if quick else TRANSFER_SCALES
    transfer = spec(
        "transfer",
        f"{TRANSFER} + c (LM_{TRANSFER_TARGET} - LM_{TRANSFER_SOURCE}), c in "
        f"{{{', '.join(f'{c:g}' for c in scales)}}} chosen on the {TRANSFER_TARGET} "
        "validation items",
        [],
        method="delta_cat",
        expression=f"{ref(TRANSFER)} + 0.1 * {ref('domain-vector')}",
        search={
            "strategy": "grid",
            "weights": {ref("domain-vector"): list(scales)},
            "objective": {"evaluation": f"val-{transfer_key(TRANSFER_TARGET)}", "goal": "maximize"},
        },
    )
    transfer["evaluate"] = (
        target.test
        + source.test
        + [{"name": f"val-{transfer_key(TRANSFER_TARGET)}", "metric": "accuracy", "dataset": target.val}]
    )
    out.append(Planned("domain transfer", transfer))
    if not quick:
        out.append(
            Planned(
                "(IA)3 merge",
                spec(
                    "ia3-code-prose",
                    "code (IA)3 + prose (IA)3, the paper's 0.5/0.5 merge",
                    ["code", "prose"],
                    method="linear",
                    expression=f"0.5 * {ref('code-ia3')} + 0.5 * {ref('prose-ia3')}",
                ),
            )
        )
    return out
