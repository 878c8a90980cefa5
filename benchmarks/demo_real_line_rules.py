"""The transfer pilot's line-rule candidates (benchmarks/demo_real_transfer_pilot.py): "is this line as
its document has it", items cut from a domain's documents (prose: not its indented code examples), no
line or item in two splits. None learned in the demo's budget (0.51-0.59 on prose items:
benchmarks/demo_real_transfer_pilot.md), so the demo's transfer task is `tone`
(registry/demo/real/tasks.py); these stay here so the pilot can be rerun.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from registry.demo.real.corpora import Doc
from registry.demo.real.tasks import (
    PAIRS_PER_LINE,
    Parts,
    TaskItem,
    TaskSet,
    _balanced,
    _domain,
    _item,
    _rng,
    transfer_sets,
)

# One SmolLM2 token each, disjoint from the demo's tasks' labels; one rule is used at a time, so the
# rules share them: the line as its document has it, not.
LABELS = {"order": ("tum", "lia"), "next": ("tum", "lia"), "fit": ("tum", "lia")}
TRIGGERS = {"order": "[order]", "next": "[next]", "fit": "[fit]"}

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


def candidate_sets(
    rule: str,
    source: Parts,
    target: Parts,
    seed: int,
    n_test: int = 100,
    n_val: int = 30,
    n_train: int = 3000,
    n_train_target: int = 0,
) -> tuple[TaskSet, TaskSet]:
    """A candidate (`tone` or a line rule) in the source domain (with training items) and in the target
    domain (test and validation items; `n_train_target` training items for an oracle control)."""
    if rule == "tone":
        return transfer_sets(source, target, seed, n_test, n_val, n_train, n_train_target)
    return (
        line_set(rule, source, seed, n_test, n_val, n_train),
        line_set(rule, target, seed, n_test, n_val, n_train_target),
    )
