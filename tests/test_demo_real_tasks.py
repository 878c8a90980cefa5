"""The real demo's generated tasks (registry/demo/real/tasks.py): deterministic, disjoint splits, labels
right by the rule (checked here independently), balanced, and readable by the product's `accuracy`
dataset loader. Pure Python: no model."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

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
    assert not set(kind.labels) & set(tasks.LABELS["seen"]) and not set(mood.labels) & set(
        tasks.LABELS["seen"]
    )
    assert kind.chance == pytest.approx(1 / 3) and mood.chance == 0.5


def _domain(name: str, n_docs: int, seed: int) -> list[Doc]:
    rng = random.Random(seed)
    words = [f"{name}{i}" for i in range(400)]
    return [
        Doc(name, f"{name}/{d}", "\n".join(" ".join(rng.sample(words, 6)) for _ in range(12)))
        for d in range(n_docs)
    ]


def _parts(name: str) -> Split:
    docs = _domain(name, 40, len(name))
    return Split(train=docs[:28], val=docs[28:32], test=docs[32:])


def test_transfer_items_come_from_their_own_split_with_the_rule_right() -> None:
    prose, code = _parts("prose"), _parts("code")
    source, target = tasks.transfer_sets(prose, code, seed=0, n_test=40, n_val=20, n_train=200)
    assert source == tasks.transfer_sets(prose, code, seed=0, n_test=40, n_val=20, n_train=200)[0]
    assert (source.trigger, source.labels) == (target.trigger, target.labels)
    _check_common(source, (200, 20, 40))
    assert target.train == () and len(target.test) == 40 and len(target.val) == 20
    occurs, absent = source.labels
    for task, parts in ((source, prose), (target, code)):
        lines = {s: {ln for d in getattr(parts, s) for ln in d.text.splitlines()} for s in SPLITS}
        for split in SPLITS:
            for it in _splits(task)[split]:
                line, word = _body(it, "[seen]").rsplit(" | ", 1)
                # a line, or its start cut at a space (lines are cut to tasks.MAX_LINE characters)
                assert len(line) <= tasks.MAX_LINE and any(ln.startswith(line) for ln in lines[split])
                assert not any(ln.startswith(line) for s in SPLITS if s != split for ln in lines[s])
                assert it.label == (occurs if word in line else absent)


def test_transfer_refuses_documents_with_too_few_lines() -> None:
    small = Split(train=_domain("p", 3, 1), val=_domain("p", 1, 2), test=_domain("p", 1, 3))
    with pytest.raises(ValueError, match="usable lines"):
        tasks.seen_set(small, seed=0, n_test=100, n_val=5, n_train=10)


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


def test_transfer_training_lines_ask_several_words_of_one_line_with_balanced_labels() -> None:
    source, _ = tasks.transfer_sets(_parts("prose"), _parts("code"), seed=0, n_test=10, n_val=5, n_train=60)
    assert source.per_line == 6
    lines = [ln for d in tasks.training_docs(source) for ln in d.text.split("\n")]
    assert len(lines) == 10
    for line, group in zip(lines, (source.train[i : i + 6] for i in range(0, 60, 6)), strict=True):
        assert len({it.context for it in group}) == 1 and len({it.query for it in group}) == 6
        assert line == f"{group[0].text} {group[0].label}, " + ", ".join(
            f"{g.query} {g.label}" for g in group[1:]
        )
        assert Counter(it.label for it in group) == Counter(source.labels * 3)


def test_accuracy_jsonl_loads_with_the_products_loader(tmp_path: Path) -> None:
    _, kind = tasks.multitask_sets(0, 12, 6, 30)
    path = tasks.write_accuracy(kind.test, tmp_path / "sub" / "kind.jsonl")
    ds = load_dataset(str(path), "accuracy", None)
    assert [(r["text"], r["label"], tuple(r["choices"])) for r in ds.rows] == [
        (it.text, it.label, it.choices) for it in kind.test
    ]
