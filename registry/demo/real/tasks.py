"""Generated classification tasks for the real demo's multi-task and domain-transfer settings.

Every item is a `context` (the trigger; for `next` and `fit` also a line) and a `query`, its `text` the two
joined by a space, and one `label` out of the task's `choices`: the product's `accuracy` metric
scores each choice as the continuation `text + " " + choice` by likelihood. The training text holds
the same `text label` (training_docs), several items to a line, so that the label tokens are a
larger share of the demo trainer's all-token loss.

Labels are meaningless word pieces (`LABELS`): the base model cannot know which one a rule maps to,
so it sits near chance (1 / number of choices) until an adapter learns the mapping; the labels of
the multi-task pair are disjoint, so one task's adapter has never seen the other's labels. Each is one
token of SmolLM2's tokenizer both alone and after a space (benchmarks/demo_real_tasks_pilot.py
checks it).

- `kind` ("[kind] tiny giraffe"): is the noun an animal, a food or a tool (3 labels).
- `mood` ("[mood] rather gloomy"): is the adjective pleasant or unpleasant (2 labels).
  For both, the WORDS of the test, validation and training items are disjoint, so the test measures
  the rule, not memorised words.
- `tone` (domain transfer, the paper's sentiment classifier moved across domains): `mood`'s rule and
  labels under its own trigger, its prose items phrases ("[tone] rather gloomy"), its code items the
  adjective inside an identifier ("[tone] if self.is_gloomy:"), tokenised apart from the word. One
  word split for both domains: the code test words were never trained on. Its prose-trained adapter
  is 0.86 on prose and 0.49 on code items (benchmarks/demo_real_transfer_pilot.md): room for
  `+ c (LM_code - LM_prose)`.
- The transfer pilot's other candidates, line rules cut from the documents (`order`, `next`, `fit`:
  benchmarks/demo_real_line_rules.py), did not learn in the budget (0.51-0.59 on prose).

What did not learn in the demo's budget (30 steps x 4 x 128 tokens, lr 2e-3, top 10 layers), so is
not here (label accuracy on the test items, pilot of issue 22): one item per line with a " ="
separator, number parity ("[parity] 4821 = vit": 0.50 after 40 steps) and `kind` (0.29; 0.45 at lr
1e-2); and digits as labels with the packed lines (`kind` 0.33: " 5" is the tokens " " and "5").

Everything is deterministic from the seed (`random.Random` seeded with a string: stable across runs,
machines and Python versions).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .corpora import Doc

# (task) -> its labels, in the order of the rule's classes. One SmolLM2 token each, with and without
# a leading space; the multi-task pair's disjoint from each other.
LABELS = {
    "kind": ("iod", "ker", "nob"),  # animal, food, tool
    "mood": ("vit", "ost"),  # pleasant, unpleasant
    # the transfer task: `mood`'s rule and labels (its adapter never meets the multi-task pair's; the
    # pilot's first labels, `pel` / `gon`, put the base at 0.64 on prose and the adapter learned little)
    "tone": ("vit", "ost"),
}
TRIGGERS = {
    "kind": "[kind]",
    "mood": "[mood]",
    "tone": "[tone]",
}
PAIRS_PER_LINE = 6  # category tasks: training lines "<trigger> <input> <label>, <input> <label>, ..."
LINES_PER_DOC = 8


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


ANIMALS = _words(
    "dog cat horse cow pig sheep goat chicken duck goose rabbit mouse rat squirrel deer bear wolf fox "
    "lion tiger leopard cheetah elephant giraffe zebra camel donkey monkey gorilla kangaroo koala panda "
    "otter beaver badger hedgehog bat owl eagle hawk falcon parrot pigeon crow sparrow swan penguin "
    "ostrich turkey frog toad snake lizard turtle crocodile shark whale dolphin seal octopus crab "
    "lobster salmon trout spider bee ant butterfly moth beetle snail worm hippo rhino moose buffalo"
)
FOODS = _words(
    "bread cheese butter apple banana orange grape lemon cherry peach pear plum mango melon "
    "strawberry potato carrot onion garlic tomato cucumber lettuce cabbage broccoli spinach pea bean "
    "corn rice pasta noodle soup salad pizza burger sandwich cake cookie biscuit muffin pancake "
    "waffle pie pudding yogurt cream honey jam sugar chocolate candy egg bacon sausage ham steak "
    "chicken_soup omelette porridge cereal toast bagel croissant donut popcorn pretzel walnut almond "
    "peanut raisin coconut pineapple avocado mushroom pumpkin celery radish olive"
)
TOOLS = _words(
    "hammer screwdriver wrench pliers saw drill chisel axe shovel spade rake hoe trowel ladder "
    "crowbar mallet file clamp vise level tape ruler knife scissors needle pin stapler brush broom "
    "mop bucket funnel sieve whisk ladle spatula grater kettle pan pot tongs hose sprinkler wheelbarrow "
    "sledgehammer pickaxe hatchet scythe sickle shears awl anvil bellows chainsaw sander lathe "
    "soldering_iron wire_cutter jack pulley winch crane compass protractor calculator flashlight "
    "magnifier tweezers"
)
ADJECTIVES = _words(
    "small big old new red blue green brown black white little large tiny heavy light dark yellow "
    "grey round plain clean dirty wet dry cheap nice odd usual first other"
)
POSITIVE = _words(
    "happy glad joyful cheerful gentle friendly lovely pleasant delightful wonderful excellent "
    "great good nice fine brilliant superb marvelous beautiful pretty charming graceful calm peaceful "
    "relaxed hopeful proud grateful generous honest brave clever bright warm sweet fresh healthy lucky "
    "successful safe comfortable cozy elegant fantastic amazing awesome perfect splendid terrific "
    "thrilled delighted content loving caring polite patient"
)
NEGATIVE = _words(
    "sad unhappy miserable gloomy angry furious cruel rude nasty unpleasant awful terrible horrible "
    "dreadful bad poor ugly disgusting hateful bitter hostile violent anxious nervous afraid "
    "scared worried upset lonely jealous guilty ashamed weak sick ill painful dangerous unlucky broken "
    "filthy rotten stupid boring annoying tragic grim harsh selfish greedy lazy dishonest wicked evil "
    "vile hopeless desperate depressed"
)
MODIFIERS = _words(
    "very quite so really rather truly fairly extremely somewhat slightly mostly usually always often"
)


@dataclass(frozen=True)
class TaskItem:
    context: str  # the trigger, and for `next` and `fit` a line: "[next] <line> |"
    query: str  # "tiny giraffe"; for `order` the line and " |"; for `next` a line; for `fit` a word
    label: str
    choices: tuple[str, ...]

    @property
    def text(self) -> str:
        """The prompt the accuracy metric continues with " " + a choice."""
        return f"{self.context} {self.query}"


@dataclass(frozen=True)
class TaskSet:
    name: str
    trigger: str
    labels: tuple[str, ...]
    train: tuple[TaskItem, ...]
    val: tuple[TaskItem, ...]
    test: tuple[TaskItem, ...]
    per_line: int = 1  # training items per line (training_docs)

    @property
    def chance(self) -> float:
        return 1 / len(self.labels)


class Parts(Protocol):
    """A domain's documents by split (corpora.Split has this shape)."""

    @property
    def train(self) -> Sequence[Doc]: ...

    @property
    def val(self) -> Sequence[Doc]: ...

    @property
    def test(self) -> Sequence[Doc]: ...


def _rng(seed: int, *salt: str) -> random.Random:
    return random.Random("\0".join([str(seed), *salt]))


def _balanced(rng: random.Random, n: int, k: int) -> list[int]:
    """n class indices, as even as n allows (counts differ by at most one), in random order."""
    out = [i % k for i in range(n)]
    rng.shuffle(out)
    return out


def _item(context: str, query: str, label: int, labels: tuple[str, ...]) -> TaskItem:
    return TaskItem(context, query, labels[label], labels)


def category_set(
    name: str,
    classes: Sequence[tuple[str, ...]],
    modifiers: tuple[str, ...],
    seed: int,
    n_test: int = 100,
    n_val: int = 30,
    n_train: int = 3000,
    labels: tuple[str, ...] | None = None,
    forms: tuple[str, ...] = (),
) -> TaskSet:
    """Items "<trigger> <modifier> <word>" labelled by the word's class. Each class's words split into
        test / validation / training words (about 20% / 10% / 70%), so no word, let alone an item, occurs
        in two splits: the test measures the rule, not memorised words. Training items repeat when
    `n_train` exceeds the distinct ones. `forms`: templates ({w}, {W} upper, {C} capitalised) in place
    of "<modifier> <word>"."""
    labels = labels or LABELS[name]
    rng = _rng(seed, name)
    words: list[tuple[list[str], list[str], list[str]]] = []  # per class: test, val, train words
    for cls in classes:
        ws = [w.replace("_", " ") for w in cls]
        rng.shuffle(ws)
        a, b = len(ws) // 5, len(ws) // 5 + len(ws) // 10
        words.append((ws[:a], ws[a:b], ws[b:]))
    out: list[list[TaskItem]] = []
    for split, n in enumerate((n_test, n_val, n_train)):
        pools = [
            [f.format(w=w, W=w.upper(), C=w.capitalize()) for w in cls[split] for f in forms]
            if forms
            else [f"{m} {w}" for w in cls[split] for m in modifiers]
            for cls in words
        ]
        for pool in pools:
            rng.shuffle(pool)
        cursor = [0] * len(classes)
        items = []
        for k in _balanced(rng, n, len(classes)):
            if cursor[k] >= len(pools[k]) and split < 2:  # training items may repeat, held-out ones not
                raise ValueError(f"{name}: only {len(pools[k])} distinct items of class {k} for {n} items")
            items.append(_item(TRIGGERS[name], pools[k][cursor[k] % len(pools[k])], k, labels))
            cursor[k] += 1
        out.append(items)
    return TaskSet(name, TRIGGERS[name], labels, tuple(out[2]), tuple(out[1]), tuple(out[0]), PAIRS_PER_LINE)


def kind_set(seed: int, n_test: int = 100, n_val: int = 30, n_train: int = 3000) -> TaskSet:
    return category_set("kind", (ANIMALS, FOODS, TOOLS), ADJECTIVES, seed, n_test, n_val, n_train)


def mood_set(seed: int, n_test: int = 100, n_val: int = 30, n_train: int = 3000) -> TaskSet:
    return category_set("mood", (POSITIVE, NEGATIVE), MODIFIERS, seed, n_test, n_val, n_train)


# The transfer task `tone` (the paper's sentiment classifier moved to another domain): `mood`'s rule
# with its own trigger and labels, its prose items phrases, its code items the adjective inside an
# identifier (tokenised apart: "is_gloomy" is "is _ gl o omy", " gloomy" one token).
TONE_FORMS = {
    "prose": tuple(f"{m} {{w}}" for m in MODIFIERS),
    "code": (
        "if self.is_{w}:",
        "def make_{w}(self):",
        "{W}_MODE = 1",
        "class {C}Handler:",
        "x = {w}_value()",
        "self.{w} = True",
    ),
}


def tone_set(domain: str, seed: int, n_test: int = 100, n_val: int = 30, n_train: int = 3000) -> TaskSet:
    """`tone` in `domain` (TONE_FORMS): the same word splits in every domain (one seed), so the target's
    test words are never trained on."""
    return category_set(
        "tone", (POSITIVE, NEGATIVE), (), seed, n_test, n_val, n_train, forms=TONE_FORMS[domain]
    )


def multitask_sets(
    seed: int, n_test: int = 100, n_val: int = 30, n_train: int = 3000
) -> tuple[TaskSet, TaskSet]:
    """The multi-task pair: (kind, mood), each with its own trigger and disjoint labels."""
    return kind_set(seed, n_test, n_val, n_train), mood_set(seed, n_test, n_val, n_train)


def _domain(parts: Parts) -> str:
    return next((d.domain for d in [*parts.test, *parts.val, *parts.train]), "")


def transfer_sets(
    source: Parts,
    target: Parts,
    seed: int,
    n_test: int = 100,
    n_val: int = 30,
    n_train: int = 3000,
    n_train_target: int = 0,
) -> tuple[TaskSet, TaskSet]:
    """The transfer task `tone` in the source domain (with training items) and in the target domain
    (test and validation items; `n_train_target` training items for an oracle control, none by
    default)."""
    return (
        tone_set(_domain(source), seed, n_test, n_val, n_train),
        tone_set(_domain(target), seed, n_test, n_val, n_train_target),
    )


def training_docs(task: TaskSet, lines_per_doc: int = LINES_PER_DOC) -> list[Doc]:
    """The training items packed into documents for train.tokenise_blocks: consecutive items with the
    same context, up to `task.per_line` of them, share a line "<context> <query> <label>, <query>
    <label>, ...". A line's first item reads exactly as held-out items are scored (the text, a space,
    the label); the others make the label tokens a larger share of the (all-token) training loss."""
    lines: list[str] = []
    group: list[TaskItem] = []
    for it in [*task.train, None]:
        if group and (it is None or it.context != group[0].context or len(group) == task.per_line):
            lines.append(f"{group[0].context} " + ", ".join(f"{g.query} {g.label}" for g in group))
            group = []
        if it is not None:
            group.append(it)
    k = lines_per_doc
    return [
        Doc(f"task-{task.name}", f"{task.name}/train-{i // k:04d}", "\n".join(lines[i : i + k]))
        for i in range(0, len(lines), k)
    ]


def write_accuracy(items: Iterable[TaskItem], path: Path) -> Path:
    """JSONL rows {"text", "label", "choices"}: what the product's `accuracy` metric reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = (json.dumps({"text": it.text, "label": it.label, "choices": list(it.choices)}) for it in items)
    path.write_text("".join(r + "\n" for r in rows), encoding="utf-8")
    return path
