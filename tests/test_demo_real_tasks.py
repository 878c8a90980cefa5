"""The real demo's generated tasks (registry/demo/real/tasks.py): deterministic, disjoint splits, labels
right by the rule (checked here independently), balanced, and readable by the product's `accuracy`
dataset loader. Pure Python: no model."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from benchmarks import demo_real_line_rules as line_rules
from registry.demo.real import tasks
from registry.demo.real.corpora import Doc, Split
from registry.evaluation import load_dataset

SPLITS = ("train", "val", "test")


def _splits(task: tasks.TaskSet) -> dict[str, tuple[tasks.TaskItem, ...]]:
    return {"train": task.train, "val": task.val, "test": task.test}


def _body(item: tasks.TaskItem, trigger: str) -> str:
    assert item.text.startswith(trigger + " ")
    return item.text[len(trigger) + 1 :]


def _check_common(task: tasks.TaskSet, sizes: tuple[int, int, int]) -> None:
    for split, n in zip(SPLITS, sizes, strict=True):
        items = _splits(task)[split]
        assert len(items) == n
        if split != "train":  # training items may repeat (category tasks), held-out ones never
            assert len({it.text for it in items}) == n, f"{split}: duplicate items"
        for it in items:
            assert it.choices == task.labels and it.label in it.choices
        counts = Counter(it.label for it in items)
        assert set(counts) == set(task.labels) and max(counts.values()) - min(counts.values()) <= 1
    texts = [{it.text for it in _splits(task)[s]} for s in SPLITS]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])


def test_multitask_sets_are_deterministic_and_seeded() -> None:
    assert tasks.multitask_sets(3, 20, 10, 60) == tasks.multitask_sets(3, 20, 10, 60)
    assert tasks.multitask_sets(3, 20, 10, 60) != tasks.multitask_sets(4, 20, 10, 60)


@pytest.mark.parametrize(
    ("index", "classes", "modifiers"),
    [
        (0, (tasks.ANIMALS, tasks.FOODS, tasks.TOOLS), tasks.ADJECTIVES),
        (1, (tasks.POSITIVE, tasks.NEGATIVE), tasks.MODIFIERS),
    ],
)
def test_category_labels_follow_the_rule_and_words_are_disjoint_across_splits(
    index: int, classes: tuple[tuple[str, ...], ...], modifiers: tuple[str, ...]
) -> None:
    task = tasks.multitask_sets(0)[index]
    _check_common(task, (3000, 30, 100))
    by_label = {
        label: {w.replace("_", " ") for w in words} for label, words in zip(task.labels, classes, strict=True)
    }
    assert not set.intersection(*by_label.values())
    words: dict[str, set[str]] = {}
    for split in SPLITS:
        words[split] = set()
        for it in _splits(task)[split]:
            modifier, word = _body(it, task.trigger).split(" ", 1)
            assert modifier in modifiers
            assert word in by_label[it.label]
            words[split].add(word)
    assert not (
        words["train"] & words["test"] or words["train"] & words["val"] or words["val"] & words["test"]
    )


def test_the_two_tasks_have_their_own_triggers_and_disjoint_labels() -> None:
    kind, mood = tasks.multitask_sets(0, 10, 5, 30)
    assert kind.trigger != mood.trigger
    assert not set(kind.labels) & set(mood.labels)
    assert tasks.LABELS["tone"] == mood.labels  # the transfer task: mood's rule in two domains
    for rule in line_rules.LINE_RULES:
        assert not set(kind.labels) & set(line_rules.LABELS[rule]) and not set(mood.labels) & set(
            line_rules.LABELS[rule]
        )
    assert kind.chance == pytest.approx(1 / 3) and mood.chance == 0.5


def _tone_word(item: tasks.TaskItem, forms: tuple[str, ...]) -> str:
    """The adjective of a `tone` item, by matching its form (the test's own parse)."""
    body = _body(item, "[tone]")
    for form in forms:
        head, _, tail = form.partition("{")
        key, _, rest = tail.partition("}")
        if body.startswith(head) and body.endswith(rest):
            word = body[len(head) : len(body) - len(rest)]
            return {"w": word, "W": word.lower(), "C": word.lower()}[key]
    raise AssertionError(body)


def test_tone_is_one_rule_in_two_domains_with_the_same_word_splits() -> None:
    prose, code = tasks.transfer_sets(
        _parts("prose"), _parts("code"), seed=0, n_test=40, n_val=20, n_train=300
    )
    assert (prose, code) == tasks.transfer_sets(_parts("prose"), _parts("code"), 0, 40, 20, 300)
    assert prose != tasks.tone_set("prose", 1, 40, 20, 300)
    assert code.train == () and (prose.trigger, prose.labels) == (code.trigger, code.labels)
    _check_common(prose, (300, 20, 40))
    assert len(code.test) == 40 and len(code.val) == 20
    pleasant, unpleasant = set(tasks.POSITIVE), set(tasks.NEGATIVE)
    words: dict[tuple[str, str], set[str]] = {}
    for task, domain in ((prose, "prose"), (code, "code")):
        for split in SPLITS:
            for it in _splits(task)[split]:
                w = _tone_word(it, tasks.TONE_FORMS[domain])
                assert w in pleasant | unpleasant
                assert it.label == task.labels[0 if w in pleasant else 1]
                words.setdefault((domain, split), set()).add(w)
    for domain in ("prose", "code"):  # no word in two splits, across the domains too: code's test
        # words were never trained on
        for a in SPLITS:
            for b in SPLITS:
                if a != b:
                    assert not words.get((domain, a), set()) & words.get(("prose", b), set())
    assert all(" " in _body(it, "[tone]") for it in prose.test)  # "<modifier> <word>"
    assert not any(_body(it, "[tone]") in {_body(p, "[tone]") for p in prose.test} for it in code.test)


def _domain(name: str, n_docs: int, seed: int) -> list[Doc]:
    """Documents of 12 lines of 5 distinct words; prose's also hold an indented code example (3 spaces,
    as pydoc's), which its items must never use."""
    rng = random.Random(seed)
    words = [f"{name}{i}" for i in range(400)]
    example = ["   code example here now"] if name == "prose" else []
    return [
        Doc(name, f"{name}/{d}", "\n".join(example + [" ".join(rng.sample(words, 5)) for _ in range(12)]))
        for d in range(n_docs)
    ]


def _parts(name: str) -> Split:
    docs = _domain(name, 40, len(name))
    return Split(train=docs[:28], val=docs[28:32], test=docs[32:])


def _doc_lines(parts: Split, split: str) -> list[list[str]]:
    """Each document's lines (the test's own reading: prose's indented lines dropped)."""
    return [
        [ln for ln in d.text.splitlines() if not (d.domain == "prose" and ln.startswith("   "))]
        for d in getattr(parts, split)
    ]


def _is_swap(a: list[str], b: list[str]) -> bool:
    """b is a with exactly two of its (different) words exchanged."""
    diff = [i for i in range(len(a)) if a[i] != b[i]] if len(a) == len(b) else []
    return len(diff) == 2 and (a[diff[0]], a[diff[1]]) == (b[diff[1]], b[diff[0]])


def _right(rule: str, it: tasks.TaskItem, docs: list[list[str]]) -> bool:
    """Whether the item's label follows `rule`, read from the split's documents."""
    real = it.label == line_rules.LABELS[rule][0]
    if rule == "order":
        line = _body(it, "[order]").removesuffix(" |").split()
        return any(
            (ln.split() == line) if real else _is_swap(ln.split(), line) for lines in docs for ln in lines
        )
    if rule == "next":
        first, second = _body(it, "[next]").split(" | ")
        where = [d for d, lines in enumerate(docs) if first in lines]
        if len(where) != 1:  # not a line of these documents (or ambiguous)
            return False
        lines = docs[where[0]]
        follows = lines.index(first) + 1 < len(lines) and lines[lines.index(first) + 1] == second
        elsewhere = any(second in ls for d, ls in enumerate(docs) if d != where[0])
        return follows if real else (elsewhere and not follows)
    prefix, word = _body(it, "[fit]").split(" | ")
    line = next((ln for lines in docs for ln in lines if ln.startswith(prefix + " ")), None)
    if line is None:
        return False
    return line.startswith(f"{prefix} {word}") if real else word not in line.split()


@pytest.mark.parametrize("rule", line_rules.LINE_RULES)
def test_transfer_items_come_from_their_own_split_with_the_rule_right(rule: str) -> None:
    prose, code = _parts("prose"), _parts("code")
    source, target = line_rules.candidate_sets(rule, prose, code, seed=0, n_test=40, n_val=20, n_train=200)
    assert (source, target) == line_rules.candidate_sets(
        rule, prose, code, seed=0, n_test=40, n_val=20, n_train=200
    )
    assert source != line_rules.candidate_sets(rule, prose, code, seed=1, n_test=40, n_val=20, n_train=200)[0]
    assert (
        (source.trigger, source.labels)
        == (target.trigger, target.labels)
        == (f"[{rule}]", line_rules.LABELS[rule])
    )
    _check_common(source, (200, 20, 40))
    assert target.train == () and len(target.test) == 40 and len(target.val) == 20
    for task, parts in ((source, prose), (target, code)):
        for split in SPLITS:
            docs = _doc_lines(parts, split)
            for it in _splits(task)[split]:
                assert "code example" not in it.text  # prose's indented code is not prose
                assert _right(rule, it, docs), (split, it)
                others = [_doc_lines(parts, s) for s in SPLITS if s != split]
                assert not any(_right(rule, it, o) and it.label == task.labels[0] for o in others)


def test_transfer_refuses_documents_with_too_few_lines() -> None:
    small = Split(train=_domain("p", 3, 1), val=_domain("p", 1, 2), test=_domain("p", 1, 3))
    with pytest.raises(ValueError, match="usable lines"):
        line_rules.line_set("order", small, seed=0, n_test=100, n_val=5, n_train=10)


def test_training_docs_pack_every_training_item_once_in_order() -> None:
    kind, _ = tasks.multitask_sets(0, 10, 5, 50)
    docs = tasks.training_docs(kind, lines_per_doc=3)
    lines = [ln for d in docs for ln in d.text.split("\n")]
    assert len(lines) == -(-50 // kind.per_line) and len(docs) == -(-len(lines) // 3)
    assert len({d.id for d in docs}) == len(docs)
    pairs = []
    for line in lines:
        assert line.startswith(kind.trigger + " ")  # each line's first item reads as a test item
        pairs += line[len(kind.trigger) + 1 :].split(", ")
    assert pairs == [f"{_body(it, kind.trigger)} {it.label}" for it in kind.train]


@pytest.mark.parametrize("rule", line_rules.LINE_RULES)
def test_transfer_training_items_come_in_contrastive_pairs(rule: str) -> None:
    """Each training line gives one item of each class, adjacent: for `order` the line and its swap."""
    source, _ = line_rules.candidate_sets(
        rule, _parts("prose"), _parts("code"), seed=0, n_test=10, n_val=5, n_train=60
    )
    assert source.per_line == tasks.PAIRS_PER_LINE and len(source.train) == 60
    for a, b in zip(source.train[::2], source.train[1::2], strict=True):
        assert {a.label, b.label} == set(source.labels) and a.context == b.context
        if rule == "order":
            assert _is_swap(_body(a, "[order]").split(), _body(b, "[order]").split())
        else:
            assert a.query != b.query
    lines = [ln for d in tasks.training_docs(source) for ln in d.text.split("\n")]
    # `order`'s items share the trigger as context: PAIRS_PER_LINE to a line; the others a line each
    assert len(lines) == (10 if rule == "order" else 30)
    assert all(ln.startswith(source.trigger + " ") for ln in lines)


def test_accuracy_jsonl_loads_with_the_products_loader(tmp_path: Path) -> None:
    _, kind = tasks.multitask_sets(0, 12, 6, 30)
    path = tasks.write_accuracy(kind.test, tmp_path / "sub" / "kind.jsonl")
    ds = load_dataset(str(path), "accuracy", None)
    assert [(r["text"], r["label"], tuple(r["choices"])) for r in ds.rows] == [
        (it.text, it.label, it.choices) for it in kind.test
    ]


def test_p7_shows_the_second_seeds_merge_beside_the_first_and_the_seed_spread() -> None:
    """P7's verdict rests on the first seed; the second seeds' merge is compared with its own LoRAs at
    the same level (t interval of paired per-item differences, scipy here), and each second-seed task
    adapter gets a seed-to-seed line."""
    from types import SimpleNamespace

    import numpy as np
    from scipy import stats as sps

    from registry.demo.real import claims, plan
    from registry.demo.real.report import RealRow

    rng = random.Random(5)

    def items(p: float) -> dict[str, list[float]]:
        return {t: [float(rng.random() < p) for _ in range(60)] for t in plan.MULTITASK}

    def adapter(name: str, p: float) -> RealRow:
        return RealRow(label=f"real/{name}@1", ref=f"real/{name}@1", kind="adapter", items=items(p))

    def merged(scenario: str, pair: tuple[str, str], p: float) -> RealRow:
        return RealRow(
            label=f"real/{scenario}@1",
            ref=f"real/{scenario}@1",
            kind="result",
            scenario=scenario,
            inputs=[(f"real/{n}@1", 0.5) for n in pair],
            items=items(p),
        )

    rows = [RealRow(label="base", ref=None, kind="base", items=items(0.5))]
    rows += [adapter(n, 0.95) for n in (*plan.MULTITASK, *plan.MULTITASK_S2)]
    rows += [merged("multi-task", plan.MULTITASK, 0.6), merged(plan.SEED2, plan.MULTITASK_S2, 0.6)]
    result = SimpleNamespace(rows=rows, controls=[], diagnostics=[], style=[])
    out = {c.id: c for c in claims.claims(result)}
    p7 = out["P7"]
    assert p7.holds is False and "(seed 1; seed 2: kind" in p7.text and "agrees" in p7.text
    level = 1 - 0.05 / plan.PRIMARY_INTERVALS
    by_label = {r.label: r for r in rows}
    for t, own in zip(plan.MULTITASK, plan.MULTITASK_S2, strict=True):
        d = np.array(by_label[f"real/{plan.SEED2}@1"].items[t]) - np.array(by_label[f"real/{own}@1"].items[t])
        half = sps.t.ppf(1 - (1 - level) / 2, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
        got = p7.estimates[f"{t} vs real/{own}@1"]
        assert got["value"] == pytest.approx(d.mean()) and got["hi"] - got["value"] == pytest.approx(half)
    spreads = [c for c in out.values() if "(another batch order)" in c.text]
    assert {c.text.split(" on ")[-1].split(" |")[0] for c in spreads} == set(plan.MULTITASK)
    assert len(spreads) == 2 * len(plan.MULTITASK_S2)  # each second seed on both tasks' items
