"""Decoding-time composition against a hand-written combination of separately loaded models' logits
(float64), for LoRA and (IA)3 adapters made by peft on tiny models built from config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from registry.evaluation import EvalRequest, Evaluator
from registry.evaluation.datasets import Dataset
from registry.evaluation.decoding import ensemble_logits, load_ensemble
from registry.evaluation.metrics import BATCH
from tests.decoding_helpers import hand_combined, hand_perplexity, separate_logits
from tests.factories import make_ia3, make_lora, save_tiny_base

TEXTS = ["the cat sat on the mat", "numbers: 1 2 3 4 5", "hello world", "ab"]
WEIGHTS = [0.7, -0.4]


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("decoding")
    return {
        "base": save_tiny_base(root / "base"),
        "lora": [make_lora(root / "l1", seed=11), make_lora(root / "l2", seed=12, alpha=16)],
        "ia3": [make_ia3(root / "i1", seed=13), make_ia3(root / "i2", seed=14)],
    }


@pytest.mark.parametrize("kind", ["lora", "ia3"])
def test_ensemble_logits_equal_hand_combination(material: dict, kind: str) -> None:
    base, folders = material["base"], material[kind]
    ids = torch.tensor([list(b"decoding time"), list(b"composition!!")])
    model, names = load_ensemble(AutoModelForCausalLM.from_pretrained(base).eval(), folders)
    with torch.no_grad():
        got = ensemble_logits(model, names, WEIGHTS)(ids, torch.ones_like(ids))
    expected = torch.cat([hand_combined(base, folders, WEIGHTS, row[None]) for row in ids])
    assert (got.double() - expected).abs().max().item() < 1e-4
    # Each adapter really changes the logits (else the check above could not fail for a wrong weight).
    assert (expected - separate_logits(base, None, ids)).abs().max().item() > 1e-3


@pytest.mark.parametrize("kind", ["lora", "ia3"])
def test_evaluator_perplexity_of_ensemble(material: dict, kind: str) -> None:
    base, folders = material["base"], material[kind]
    ev = Evaluator(base, torch.device("cpu"))
    rows = tuple({"text": t} for t in TEXTS)
    req = [EvalRequest("ppl", "perplexity", Dataset(uri="mem://", sha256="0" * 64, rows=rows))]
    before = ev.evaluate(None, req)["ppl"]
    got = ev.evaluate_ensemble(folders, WEIGHTS, req)["ppl"]
    assert got == pytest.approx(hand_perplexity(base, folders, WEIGHTS, TEXTS), rel=1e-5)
    # One input at weight 1 is exactly that adapter; and the base is pristine afterwards.
    assert ev.evaluate_ensemble(folders[:1], [1.0], req)["ppl"] == pytest.approx(
        ev.evaluate(folders[0], req)["ppl"], rel=1e-5
    )
    assert ev.evaluate(None, req)["ppl"] == pytest.approx(before, rel=1e-6)


def test_evaluator_accuracy_of_ensemble(material: dict) -> None:
    base, folders = material["base"], material["lora"]
    ev = Evaluator(base, torch.device("cpu"))
    rows = ({"text": "x is", "label": "a"}, {"text": "y is", "label": "b"}, {"text": "z is", "label": "a"})
    req = [EvalRequest("acc", "accuracy", Dataset(uri="mem://", sha256="0" * 64, rows=rows))]
    expected = 0
    for row in rows:
        scores = {}
        for label in ("a", "b"):
            ids = torch.tensor([list((row["text"] + " " + label).encode())])
            logp = torch.log_softmax(hand_combined(base, folders, WEIGHTS, ids)[0, :-1], dim=-1)
            scores[label] = float(logp[-1, ids[0, -1]])  # the label is one byte
        expected += max(scores, key=lambda k: (scores[k], k == "a")) == row["label"]
    assert ev.evaluate_ensemble(folders, WEIGHTS, req)["acc"] == pytest.approx(expected / len(rows))


def test_one_forward_pass_per_input_and_one_for_the_base_per_batch(material: dict) -> None:
    base, folders = material["base"], material["lora"]
    ev = Evaluator(base, torch.device("cpu"))
    calls: list[int] = []
    handle = ev.base.lm_head.register_forward_hook(lambda _m, _a, out: calls.append(out.shape[0]))
    rows = tuple({"text": f"text number {i}"} for i in range(BATCH + 3))  # two batches
    req = [EvalRequest("ppl", "perplexity", Dataset(uri="mem://", sha256="0" * 64, rows=rows))]
    try:
        ev.evaluate_ensemble(folders, WEIGHTS, req)
    finally:
        handle.remove()
    # (1 base + 2 adapters) forward passes per batch, each over the whole batch.
    assert calls == [BATCH] * 3 + [3] * 3


def test_no_base_forward_when_its_weight_is_zero(material: dict) -> None:
    """At 0.5/0.5 the base's weight 1 - sum_i w_i is 0: only the inputs run, and the result is their
    average."""
    base, folders = material["base"], material["lora"]
    model, names = load_ensemble(AutoModelForCausalLM.from_pretrained(base).eval(), folders)
    calls: list[int] = []
    handle = model.base_model.model.lm_head.register_forward_hook(lambda _m, _a, out: calls.append(1))
    ids = torch.tensor([list(b"decoding time")])
    try:
        with torch.no_grad():
            got = ensemble_logits(model, names, [0.5, 0.5])(ids, torch.ones_like(ids))
    finally:
        handle.remove()
    assert calls == [1, 1]
    expected = hand_combined(base, folders, [0.5, 0.5], ids)
    assert (got.double() - expected).abs().max().item() < 1e-4
