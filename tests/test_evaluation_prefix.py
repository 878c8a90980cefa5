"""The evaluator's prefix cache (registry/evaluation/prefix.py in `Evaluator`): `evaluate` and
`evaluate_ensemble` with the cache equal the same evaluator without it (the full forward), for
perplexity and accuracy, on a tiny Llama with peft LoRAs on its top layers; an adapter on layer 0 or on
the embeddings takes the full forward; a tiny bound evicts without changing a result; a model the
self-check rejects falls back to the full forward. Milliseconds; no SmolLM2 needed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from registry.evaluation import EvalRequest, Evaluator
from registry.evaluation.datasets import Dataset
from tests.prefix_helpers import TEXTS, lora, tiny

REL = 1e-5  # fp32 rounding between batch shapes; the prefix check's own bound is 1e-3 on logits
CPU = torch.device("cpu")
# One-row datasets: each row's accuracy is its own 0/1, so a wrong score on any row shows.
LABELS = ["red", "tan", "sky", "fog"]  # one length: the choice is the model's, not the shortest
ROWS = [{"text": f"{t} Is it?", "label": LABELS[i % 4]} for i, t in enumerate(TEXTS["prose"] + TEXTS["code"])]


def _requests() -> list[EvalRequest]:
    def dataset(rows: list[dict]) -> Dataset:
        return Dataset(uri="mem://", sha256="0" * 64, rows=tuple(rows))

    docs = [t for ts in TEXTS.values() for t in ts]
    out = [EvalRequest(f"ppl{i}", "perplexity", dataset([{"text": t}])) for i, t in enumerate(docs)]
    out.append(EvalRequest("ppl_all", "perplexity", dataset([{"text": t} for t in docs])))
    acc = [
        EvalRequest(f"acc{i}", "accuracy", dataset([{**r, "choices": LABELS}])) for i, r in enumerate(ROWS)
    ]
    return out + acc + [EvalRequest("acc_all", "accuracy", dataset(ROWS))]


REQUESTS = _requests()
DOCS = len(TEXTS["code"]) + len(TEXTS["prose"])


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("evalprefix")
    tiny().save_pretrained(root / "base")
    return {
        "base": root / "base",
        "x": lora(root / "x", 1),
        "y": lora(root / "y", 2, layers=[3]),
        "low": lora(root / "low", 3, layers=[0, 3]),
        "emb": lora(root / "emb", 4, layers=None, targets=["embed_tokens", "q_proj"]),
    }


@pytest.fixture(scope="module")
def full(material: dict[str, Path]) -> Evaluator:
    ev = Evaluator(material["base"], CPU, prefix_cache_bytes=0)
    assert ev.prefix is None
    return ev


def _same(got: dict[str, float], want: dict[str, float]) -> None:
    assert list(got) == list(want)
    for name, value in want.items():
        if name.startswith("acc"):
            assert got[name] == value, name
        else:
            assert got[name] == pytest.approx(value, rel=REL), name


def test_evaluate_through_the_cache_equals_the_full_forward(
    material: dict[str, Path], full: Evaluator
) -> None:
    ev = Evaluator(material["base"], CPU, prefix_cache_bytes=64 * 2**20)
    assert ev.prefix is not None
    base = full.evaluate(None, REQUESTS)
    _same(ev.evaluate(None, REQUESTS), base)
    prefix = ev.prefix.computed  # layer 4's (the final norm's input): the base alone
    want = full.evaluate(material["x"], REQUESTS)
    _same(ev.evaluate(material["x"], REQUESTS), want)
    assert ev.prefix.computed > prefix  # served from the cache (layer 2's prefixes now computed)
    # The LoRA really moves every document (else a cache serving the base could pass).
    assert all(abs(want[f"ppl{i}"] / base[f"ppl{i}"] - 1) > 1e-3 for i in range(DOCS))
    assert [want[f"acc{i}"] for i in range(len(ROWS))] != [base[f"acc{i}"] for i in range(len(ROWS))]
    # A second adapter from layer 2 up (its LoRA on layer 3 only: layer 3's prefixes) and the first
    # again: the first's prefixes are reused, none recomputed.
    _same(ev.evaluate(material["y"], REQUESTS), full.evaluate(material["y"], REQUESTS))
    computed = ev.prefix.computed
    _same(ev.evaluate(material["x"], REQUESTS), want)
    assert ev.prefix.computed == computed
    assert ev.prefix.start() == 4  # the base is pristine afterwards


@pytest.mark.parametrize("adapter", ["low", "emb"])
def test_an_adapter_below_the_cache_takes_the_full_forward(
    material: dict[str, Path], full: Evaluator, adapter: str
) -> None:
    """A LoRA on layer 0 (no prefix to share) or on the embeddings (outside the decoder layers)."""
    ev = Evaluator(material["base"], CPU, prefix_cache_bytes=64 * 2**20)
    assert ev.prefix is not None
    _same(ev.evaluate(material[adapter], REQUESTS), full.evaluate(material[adapter], REQUESTS))
    assert ev.prefix.computed == 0


def test_ensemble_through_the_cache_equals_the_full_forward(
    material: dict[str, Path], full: Evaluator
) -> None:
    ev = Evaluator(material["base"], CPU, prefix_cache_bytes=64 * 2**20)
    assert ev.prefix is not None
    folders = [material["x"], material["y"]]
    for weights in ([0.7, -0.4], [0.5, 0.5]):  # with the base's term, and without it
        _same(
            ev.evaluate_ensemble(folders, weights, REQUESTS),
            full.evaluate_ensemble(folders, weights, REQUESTS),
        )
    assert ev.prefix.computed > 0
    # An input on layer 0: the full forward.
    computed = ev.prefix.computed
    low = [material["x"], material["low"]]
    _same(ev.evaluate_ensemble(low, [0.5, 0.5], REQUESTS), full.evaluate_ensemble(low, [0.5, 0.5], REQUESTS))
    assert ev.prefix.computed == computed


def test_a_tiny_bound_evicts_without_changing_results(material: dict[str, Path], full: Evaluator) -> None:
    bound = 40_000  # about 4 documents' prefixes (64 floats per token)
    ev = Evaluator(material["base"], CPU, prefix_cache_bytes=bound)
    assert ev.prefix is not None
    for _ in range(2):
        for adapter in ("x", "y"):
            _same(ev.evaluate(material[adapter], REQUESTS), full.evaluate(material[adapter], REQUESTS))
            assert 0 < ev.prefix.stored_bytes <= bound
    assert ev.prefix.computed > 4 * DOCS  # recomputed each time: nothing fits for long


def test_a_model_the_self_check_rejects_falls_back(material: dict[str, Path], full: Evaluator) -> None:
    """Weights below the cached layer rewritten without the guard seeing it stand for an architecture
    the cache's argument does not hold for: the check fails, the evaluator drops its cache and the
    result is the full forward's."""
    ev = Evaluator(material["base"], CPU, prefix_cache_bytes=64 * 2**20)
    assert ev.prefix is not None
    ev.evaluate(material["x"], REQUESTS)  # layer 2's prefixes cached, checked once
    ref = Evaluator(material["base"], CPU, prefix_cache_bytes=0)
    with torch.no_grad():
        for model in (ev.base, ref.base):
            model.model.layers[0].mlp.down_proj.weight.mul_(3.0)
    ev.prefix._checked.clear()  # the next batch is checked again, as a new cache's first batch is
    _same(ev.evaluate(material["x"], REQUESTS), ref.evaluate(material["x"], REQUESTS))
    assert ev.prefix is None
