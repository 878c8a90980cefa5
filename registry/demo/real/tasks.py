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
- LINE_RULES (`order`, `next`, `fit`): "is this line as its document has it", items cut from a
  domain's documents (prose: not its indented code examples), no line or item in two splits; the
  transfer pilot's other candidates, which did not learn in the budget (0.51-0.59 on prose).

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
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .corpora import Doc

# (task) -> its labels, in the order of the rule's classes. One SmolLM2 token each, with and without
# a leading space; the multi-task pair's disjoint from each other and from the line rules'.
LABELS = {
    "kind": ("iod", "ker", "nob"),  # animal, food, tool
    "mood": ("vit", "ost"),  # pleasant, unpleasant
    # the transfer task: `mood`'s rule and labels (its adapter never meets the multi-task pair's; the
    # pilot's first labels, `pel` / `gon`, put the base at 0.64 on prose and the adapter learned little)
    "tone": ("vit", "ost"),
    # the transfer task's candidates (tasks.LINE_RULES; one is used, so they share labels): the line as
    # its document has it, not
    "order": ("tum", "lia"),
    "next": ("tum", "lia"),
    "fit": ("tum", "lia"),
}
TRIGGERS = {
    "kind": "[kind]",
    "mood": "[mood]",
    "tone": "[tone]",
    "order": "[order]",
    "next": "[next]",
    "fit": "[fit]",
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


WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")
MIN_WORDS = 4  # a line with fewer words is not a snippet
MAX_LINE = 48  # characters; longer lines are cut at the last space before


def _lines(doc: Doc) -> list[str]:
    out = []
    for raw in doc.text.splitlines():
        line = " ".join(raw.split())
        if len(line) > MAX_LINE:
            line = line[: line.rfind(" ", 0, MAX_LINE)]
        if len(WORD.findall(line)) >= MIN_WORDS and "|" not in line:
            out.append(line)
    return out


# Candidates for a domain-DEPENDENT transfer task (pilot: benchmarks/demo_real_transfer_pilot.py), each
# "is this line as its document has it": a rule whose answer needs the domain's grammar, not copying.
LINE_RULES = ("order", "next", "fit")


def _prose_line(raw: str, domain: str) -> bool:
    """Prose items are prose: pydoc's indented lines are code examples (3+ spaces), not its prose."""
    return domain != "prose" or not raw.startswith("   ")


def _doc_lines(doc: Doc) -> list[str]:
    """`_lines` of a document, without prose's indented code examples, in document order."""
    out = []
    for raw in doc.text.splitlines():
        if _prose_line(raw, doc.domain):
            out += _lines(Doc(doc.domain, doc.id, raw))
    return out


def _swapped(line: str, rng: random.Random) -> str:
    """The line with two of its words (distinct strings, WORD matches; the line has two) exchanged."""
    spans = [m.span() for m in WORD.finditer(line)]
    pairs = [(i, j) for i in range(len(spans)) for j in range(i + 1, len(spans))]
    pairs = [(i, j) for i, j in pairs if line[slice(*spans[i])] != line[slice(*spans[j])]]
    i, j = rng.choice(pairs)
    (a0, a1), (b0, b1) = spans[i], spans[j]
    return line[:a0] + line[b0:b1] + line[a1:b0] + line[a0:a1] + line[b1:]


def _line_items(
    rule: str, docs: Sequence[Doc], n: int, rng: random.Random, banned: set[str], split: str, both: bool
) -> list[TaskItem]:
    """n items of `rule` from distinct lines of `docs` (documents taken in turn so that every document
    contributes) not in `banned` (the lines and item texts of other splits; this split's are added).
    Label 0 (`tum`): the line as the document has it; 1 (`lia`): not.
    - order: "[order] <line> |" vs the line with two of its words exchanged;
    - next: "[next] <line> | <the next line>" vs a line of another document of the split;
    - fit: "[fit] <line's first words> | <the next word>" vs a word of another line not in this one.
    `both`: each line gives one item of each class, adjacent (training: contrastive pairs), up to n
    items or as many as the lines give; else one item per line, labels balanced over the split."""
    per_doc = []
    for d, doc in enumerate(docs):
        lines = _doc_lines(doc)
        follow = [(lines[i], lines[i + 1], d) for i in range(len(lines) - 1)]
        rng.shuffle(follow)
        per_doc.append(follow)
    order: list[tuple[str, str, int]] = []
    for i in range(max((len(ls) for ls in per_doc), default=0)):
        order += [ls[i] for ls in per_doc if i < len(ls)]
    firsts: dict[str, tuple[str, str, int]] = {}
    for t in order:  # a line in two places counts once; one with a single distinct word cannot be swapped
        if t[0] not in banned and len(set(WORD.findall(t[0]))) >= 2:
            firsts.setdefault(t[0], t)
    pool = list(firsts.values())
    vocab = sorted({w for line, _, _ in pool for w in WORD.findall(line)})
    labels, trigger = LABELS[rule], TRIGGERS[rule]
    n_lines = -(-n // 2) if both else n
    classes = _balanced(rng, n_lines, 2)
    items: list[TaskItem] = []
    used: set[str] = set()
    for line, nxt, d in pool:
        if len(items) >= n or (both and len(items) // 2 >= len(classes)):
            break
        first = classes[len(items) // 2 if both else len(items)]
        made = []
        spans = [m.span() for m in WORD.finditer(line)]
        k = rng.randrange(2, len(spans)) if rule == "fit" else 0  # `fit`: the word asked (one per line)
        for cls in (first, 1 - first) if both else (first,):
            if rule == "order":
                made.append(_item(trigger, f"{_swapped(line, rng) if cls else line} |", cls, labels))
            elif rule == "next":
                other = nxt
                while cls == 1 and other in (nxt, line):
                    cand, _, d2 = rng.choice(pool)
                    other = cand if d2 != d else nxt
                made.append(_item(f"{trigger} {line} |", other, cls, labels))
            else:
                prefix, word = line[: spans[k][0]].rstrip(), line[slice(*spans[k])]
                while cls == 1 and word in line:
                    word = rng.choice(vocab)
                made.append(_item(f"{trigger} {prefix} |", word, cls, labels))
        texts = {it.text for it in made}
        if texts & (banned | used) or len(texts) < len(made):  # an item seen in this or another split
            continue
        used |= texts
        banned.add(line)
        items += made
    items = items[:n]
    if not both and len(items) < n:
        raise ValueError(f"{rule}: {split} documents hold {len(items)} usable lines, need {n}")
    banned |= used
    return items


def _domain(parts: Parts) -> str:
    return next((d.domain for d in [*parts.test, *parts.val, *parts.train]), "")


def line_set(
    rule: str, parts: Parts, seed: int, n_test: int = 100, n_val: int = 30, n_train: int = 3000
) -> TaskSet:
    """A line rule (LINE_RULES) on one domain's documents: test items from test documents only,
    validation from validation documents, training from training documents (both classes of each line
    adjacent: packed PAIRS_PER_LINE to a training line when the context is the trigger alone)."""
    rng = _rng(seed, rule, _domain(parts))
    banned: set[str] = set()
    test = _line_items(rule, parts.test, n_test, rng, banned, "test", False)
    val = _line_items(rule, parts.val, n_val, rng, banned, "val", False)
    train = _line_items(rule, parts.train, n_train, rng, banned, "train", True) if n_train else []
    return TaskSet(rule, TRIGGERS[rule], LABELS[rule], tuple(train), tuple(val), tuple(test), PAIRS_PER_LINE)


def transfer_sets(
    rule: str,
    source: Parts,
    target: Parts,
    seed: int,
    n_test: int = 100,
    n_val: int = 30,
    n_train: int = 3000,
    n_train_target: int = 0,
) -> tuple[TaskSet, TaskSet]:
    """The line rule `rule` in the source domain (with training items) and in the target domain (test
    and validation items; `n_train_target` training items for an oracle control, none by default)."""
    if rule == "tone":
        return (
            tone_set(_domain(source), seed, n_test, n_val, n_train),
            tone_set(_domain(target), seed, n_test, n_val, n_train_target),
        )
    return (
        line_set(rule, source, seed, n_test, n_val, n_train),
        line_set(rule, target, seed, n_test, n_val, n_train_target),
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
