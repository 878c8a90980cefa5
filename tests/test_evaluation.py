"""Evaluation metrics against transformers' own loss, gates and search strategies (no services)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from registry.evaluation import EvalRequest, Evaluator, metrics
from registry.evaluation.datasets import Dataset
from registry.evaluation.gates import check_gates
from registry.evaluation.search import make_strategy
from registry.spec import GateSpec, SearchSpec
from tests.factories import make_lora, save_tiny_base

TEXTS = ["the cat sat on the mat", "numbers: 1 2 3", "hello world"]


def _ids(text: str) -> torch.Tensor:
    return torch.tensor([list(text.encode())])


def _hf_perplexity(model: torch.nn.Module, texts: list[str]) -> float:
    total, count = 0.0, 0
    with torch.no_grad():
        for t in texts:
            ids = _ids(t)
            loss = model(input_ids=ids, labels=ids).loss.item()  # mean NLL over len-1 predictions
            total += loss * (ids.shape[1] - 1)
            count += ids.shape[1] - 1
    return math.exp(total / count)


def _dataset(rows: list[dict]) -> Dataset:
    return Dataset(uri="mem://", sha256="0" * 64, rows=tuple(rows))


@pytest.fixture(scope="module")
def base_and_adapter(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("eval")
    return save_tiny_base(root / "base"), make_lora(root / "lora", seed=7)


def test_perplexity_matches_transformers_loss(base_and_adapter: tuple[Path, Path]) -> None:
    base, lora = base_and_adapter
    ev = Evaluator(base, torch.device("cpu"))
    req = [EvalRequest("ppl", "perplexity", _dataset([{"text": t} for t in TEXTS]))]
    reference = AutoModelForCausalLM.from_pretrained(base).eval()
    assert ev.evaluate(None, req)["ppl"] == pytest.approx(_hf_perplexity(reference, TEXTS), rel=1e-5)
    with_adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(lora)).eval()
    assert ev.evaluate(lora, req)["ppl"] == pytest.approx(_hf_perplexity(with_adapter, TEXTS), rel=1e-5)
    # The adapter was removed again: the base scores as before.
    assert ev.evaluate(None, req)["ppl"] == pytest.approx(_hf_perplexity(reference, TEXTS), rel=1e-5)


def test_accuracy_picks_the_most_likely_label(base_and_adapter: tuple[Path, Path]) -> None:
    base, _ = base_and_adapter
    model = AutoModelForCausalLM.from_pretrained(base).eval()
    rows = [
        {"text": "the cat is", "label": "yes"},
        {"text": "one two", "label": "no"},
        {"text": "hello", "label": "maybe"},
    ]
    labels = sorted({r["label"] for r in rows})

    def score(prefix: str, label: str) -> float:
        p, full = list(prefix.encode()), list((prefix + label).encode())
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=torch.tensor([full])).logits[0, :-1], -1)
        return sum(logp[t - 1, full[t]].item() for t in range(len(p), len(full)))

    expected = sum(
        max(labels, key=lambda lab: score(r["text"] + " ", lab)) == r["label"] for r in rows
    ) / len(rows)
    ev = Evaluator(base, torch.device("cpu"))
    got = ev.evaluate(None, [EvalRequest("acc", "accuracy", _dataset(rows))])["acc"]
    assert got == pytest.approx(expected)


class _BpeTokenizer:
    """A BPE trained here on a few lines (ids < 128, the tiny base's vocabulary): like SmolLM2's, it
    merges a word with the space before it (" yes" is one token), so `text + " " + label` tokenised
    whole differs from its parts."""

    def __init__(self) -> None:
        from tokenizers import Tokenizer, models, pre_tokenizers, trainers

        self._tok = Tokenizer(models.BPE())
        self._tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="never")
        trainer = trainers.BpeTrainer(vocab_size=100, show_progress=False)
        self._tok.train_from_iterator(["the cat is yes", "one two no", "hello maybe yes no"] * 20, trainer)

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text).ids)


def test_accuracy_scores_the_label_as_tokenised_in_running_text(base_and_adapter: tuple[Path, Path]) -> None:
    """Each continuation is scored as tokenised with its context in one string; several datasets are
    scored in shared batches; a row whose continuations are each one token after its context is read
    from one forward of the context. Compared with scores computed here, continuation by continuation."""
    base, _ = base_and_adapter
    model = AutoModelForCausalLM.from_pretrained(base).eval()
    tok = _BpeTokenizer()
    assert tok.encode("the cat is yes") != tok.encode("the cat is ") + tok.encode("yes")  # the case tested
    assert len(tok.encode("the cat is yes")) == len(tok.encode("the cat is")) + 1  # " yes": one token
    rows = [
        {"text": "the cat is", "label": "yes"},
        {"text": "one two ", "label": "no"},  # a trailing space moves to the continuation
        {"text": "hello", "label": "maybe", "choices": ["maybe", "yes"]},
        {"text": "hello", "label": "cat is", "choices": ["cat is", "no"]},  # a two-token continuation
    ]
    seen: list[list[int]] = []

    def recording(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        seen.extend(
            [int(t) for t, m in zip(row, keep, strict=True) if m] for row, keep in zip(ids, mask, strict=True)
        )
        return model(input_ids=ids, attention_mask=mask).logits

    def score(text: str, label: str) -> float:
        context = text.rstrip(" ")
        whole, head = tok.encode(context + " " + label), tok.encode(context)
        assert whole[: len(head)] == head
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=torch.tensor([whole])).logits[0, :-1], -1)
        return sum(logp[t - 1, whole[t]].item() for t in range(len(head), len(whole)))

    def accuracy(rows: list[dict]) -> float:
        labels = sorted({r["label"] for r in rows})
        hits = [
            max(r.get("choices") or labels, key=lambda lab: score(r["text"], lab)) == r["label"] for r in rows
        ]
        return sum(hits) / len(rows)

    datasets = [[r] for r in rows] + [rows]
    got = metrics.accuracies(recording, tok, datasets, torch.device("cpu"), 512)
    assert got == pytest.approx([accuracy(d) for d in datasets])
    # a row whose continuations are one token each: its context once; any other: every continuation
    expected: list[list[int]] = []
    kinds = set()
    for d in datasets:
        labels = sorted({r["label"] for r in d})
        for r in d:
            ctx = tok.encode(r["text"].rstrip(" "))
            wholes = [tok.encode(r["text"].rstrip(" ") + " " + c) for c in r.get("choices") or labels]
            single = all(len(w) == len(ctx) + 1 and w[: len(ctx)] == ctx for w in wholes)
            kinds.add(single)
            expected += [ctx] if single else wholes
    assert kinds == {True, False}  # both paths are exercised
    assert sorted(seen) == sorted(expected)
    assert metrics.accuracy(recording, tok, rows, torch.device("cpu"), 512) == pytest.approx(accuracy(rows))


def test_gates() -> None:
    metric_of = {"ppl": "perplexity", "acc": "accuracy"}
    parents = {"acme/math": {"ppl": 10.0, "acc": 0.8}}
    assert check_gates([GateSpec(evaluation="ppl", max=12.0)], {"ppl": 11.0}, metric_of, parents) == []
    assert check_gates([GateSpec(evaluation="ppl", max=12.0)], {"ppl": 13.0}, metric_of, parents)
    assert check_gates([GateSpec(evaluation="acc", min=0.5)], {"acc": 0.4}, metric_of, parents)
    regress = GateSpec(evaluation="ppl", max_regression_vs="acme/math", by=0.05)
    assert check_gates([regress], {"ppl": 10.4}, metric_of, parents) == []
    assert check_gates([regress], {"ppl": 10.6}, metric_of, parents)
    acc_regress = GateSpec(evaluation="acc", max_regression_vs="acme/math", by=0.1)
    assert check_gates([acc_regress], {"acc": 0.73}, metric_of, parents) == []
    assert check_gates([acc_regress], {"acc": 0.71}, metric_of, parents)


def _search(strategy: str, budget: int | None = None) -> SearchSpec:
    return SearchSpec(
        strategy=strategy,
        weights={"a/x": [-0.6, -0.2], "a/y": [0.1, 0.5, 0.9]},
        objective={"evaluation": "ppl", "goal": "minimize"},
        budget=budget,
    )


@pytest.mark.parametrize("strategy", ["grid", "random", "nevergrad"])
def test_search_strategies_propose_within_bounds_and_find_the_best(strategy: str) -> None:
    s = make_strategy(_search(strategy, budget=None if strategy == "grid" else 10), seed=3)
    target = {"a/x": -0.5, "a/y": 0.6}
    for batch in s.batches():
        for cand in batch:
            assert -0.6 <= cand.weights["a/x"] <= -0.2 and 0.1 <= cand.weights["a/y"] <= 0.9
            s.tell(cand, sum((cand.weights[k] - target[k]) ** 2 for k in target))
    assert len(s.told) == (6 if strategy == "grid" else 10)
    best, value = s.best()
    assert value == min(v for _, v in s.told)


def test_random_search_is_reproducible() -> None:
    first = [c.weights for b in make_strategy(_search("random", 5), seed=1).batches() for c in b]
    again = [c.weights for b in make_strategy(_search("random", 5), seed=1).batches() for c in b]
    assert first == again
