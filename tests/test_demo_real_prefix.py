"""The pair sweep's prefix cache (registry/evaluation/prefix.py) against full forwards written here:
per-document perplexities of the base, a LoRA, the scaled sums, the decoding-time ensembles and an engine
method merged into the weights, on a tiny Llama built from config (4 layers, random weights) with LoRAs
on its top two layers made by peft; each reference is one document at a time through a whole model
(merged weights in float64, no padding, no cache). Milliseconds; no SmolLM2 needed."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import LlamaForCausalLM

from registry.compose import compose
from registry.demo.real import sweep
from registry.demo.real.plan import SWEEP_METHODS
from registry.evaluation import Evaluator, metrics
from registry.evaluation.prefix import PrefixCache
from registry.pem import read_adapter
from tests.prefix_helpers import LAYERS, TEXTS, TOP
from tests.prefix_helpers import lora as _lora
from tests.prefix_helpers import tiny as _tiny

REL = 1e-4


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("prefix")
    _tiny().save_pretrained(root / "base")
    return {"base": root / "base", "x": _lora(root / "x", 1), "y": _lora(root / "y", 2)}


def _deltas(folder: Path) -> dict[str, torch.Tensor]:
    """module path -> (alpha / r) B A in float64, from the saved peft files."""
    cfg = json.loads((folder / "adapter_config.json").read_text())
    tensors = load_file(folder / "adapter_model.safetensors")
    out = {}
    for key, a in tensors.items():
        if ".lora_A." in key:
            b = tensors[key.replace(".lora_A.", ".lora_B.")]
            path = key.removeprefix("base_model.model.").split(".lora_A.")[0]
            out[path] = cfg["lora_alpha"] / cfg["r"] * (b.double() @ a.double())
    return out


def _merged(base: Path, deltas: list[tuple[float, dict[str, torch.Tensor]]]) -> LlamaForCausalLM:
    model = LlamaForCausalLM.from_pretrained(base).eval()
    with torch.no_grad():
        for c, d in deltas:
            for path, delta in d.items():
                w = model.get_submodule(path).weight
                w.copy_((w.double() + c * delta).float())
    return model


def _doc_logits(model: torch.nn.Module, text: str) -> torch.Tensor:
    ids = torch.tensor([list(text.encode())])
    with torch.no_grad():
        return model(input_ids=ids).logits[0].double()


def _ppl(logits: torch.Tensor, text: str) -> float:
    ids = torch.tensor(list(text.encode()))
    logp = torch.log_softmax(logits[:-1], dim=-1).gather(-1, ids[1:, None])
    return math.exp(-logp.mean().item())


def _reference(models: list[tuple[float, torch.nn.Module]]) -> dict[str, list[float]]:
    """Per document: perplexity of sum_i c_i logits_i (one model with c = 1: that model)."""
    return {
        d: [_ppl(sum(c * _doc_logits(m, t) for c, m in models), t) for t in ts]  # type: ignore[misc]
        for d, ts in TEXTS.items()
    }


def _close(got: dict[str, list[float]], want: dict[str, list[float]]) -> None:
    for d in want:
        assert got[d] == pytest.approx(want[d], rel=REL), d


def test_base_and_one_lora_equal_full_forwards(tiny: dict[str, Path]) -> None:
    ev = Evaluator(tiny["base"], torch.device("cpu"))
    cache = PrefixCache(ev.base)
    base = LlamaForCausalLM.from_pretrained(tiny["base"]).eval()
    _close(sweep._score(ev, TEXTS, cache.scorer()), _reference([(1.0, base)]))
    assert cache.start() == LAYERS  # nothing changed: only the final norm and the head run
    model = PeftModel.from_pretrained(ev.base, str(tiny["x"])).eval()
    try:
        assert cache.start() == TOP[0]
        got = sweep._score(ev, TEXTS, cache.scorer())
    finally:
        ev.base = model.unload()
    lora = _merged(tiny["base"], [(1.0, _deltas(tiny["x"]))])
    want = _reference([(1.0, lora)])
    _close(got, want)
    # The LoRA really moves every document (else the equality above could not catch a base-only path).
    base_ppl = _reference([(1.0, base)])
    assert all(abs(a / b - 1) > 1e-3 for d in want for a, b in zip(want[d], base_ppl[d], strict=True))


def test_pair_sweep_from_one_cache_equals_full_forwards(tiny: dict[str, Path]) -> None:
    """Scaled sums c (x + y), decoding time at 0.5/0.5 and 1/1, and an engine method merged into the
    weights, all through one cache: each document's prefix is computed once for all of them."""
    ev = Evaluator(tiny["base"], torch.device("cpu"))
    cache = PrefixCache(ev.base)
    got = sweep.pair_controls(ev, ("x", "y"), (tiny["x"], tiny["y"]), TEXTS, (0.5, 1.0), (0.5, 1.0), cache)
    methods = SWEEP_METHODS[:1]  # ties: the engine's result has modules at every LoRA module
    parents = (read_adapter(tiny["x"]), read_adapter(tiny["y"]))
    # tuned on the test texts themselves (no prefix beyond theirs); s in {0.5, 1}, scored at the chosen s
    tuning = sweep.Tuning([t for ts in TEXTS.values() for t in ts], (0.5, 1.0))
    got += sweep.method_controls(ev, ("x", "y"), parents, TEXTS, methods, tuning, cache)
    assert cache.computed == sum(len(ts) for ts in TEXTS.values())

    base = LlamaForCausalLM.from_pretrained(tiny["base"]).eval()
    dx, dy = _deltas(tiny["x"]), _deltas(tiny["y"])
    lx, ly = _merged(tiny["base"], [(1.0, dx)]), _merged(tiny["base"], [(1.0, dy)])
    f = methods[0].fields
    result = compose(list(parents), [1.0, 1.0], f["method"], rank=f.get("rank"), density=f.get("density"))
    method = {s: copy.deepcopy(base) for s in (0.5, 1.0)}
    with torch.no_grad():
        for s, model in method.items():
            for path, m in result.adapter.modules.items():
                w = model.get_submodule(path).weight
                w.copy_((w.double() + s * m.scale * (m.B.double() @ m.A.double())).float())
    want = {
        "decoding 0.5/0.5": _reference([(0.5, lx), (0.5, ly)]),
        "decoding 1/1": _reference([(1.0, lx), (1.0, ly), (-1.0, base)]),
        "scaled 0.5": _reference([(1.0, _merged(tiny["base"], [(0.5, dx), (0.5, dy)]))]),
        "scaled 1": _reference([(1.0, _merged(tiny["base"], [(1.0, dx), (1.0, dy)]))]),
        "ties s=0.5": _reference([(1.0, method[0.5])]),
        "ties s=1": _reference([(1.0, method[1.0])]),
    }
    labels = {("decoding", 0.5): "decoding 0.5/0.5", ("decoding", 1.0): "decoding 1/1"}
    labels |= {("scaled", 0.5): "scaled 0.5", ("scaled", 1.0): "scaled 1"}
    labels |= {("tuned", 0.5): "ties s=0.5", ("tuned", 1.0): "ties s=1"}
    assert len(got) == len(want) - 1  # one of the two ties scales is chosen
    for c in got:
        _close(c.docs, want[labels[c.kind, c.weights[0]]])
    # A second pair through the same cache: no prefix computed again, and the inputs' final hidden
    # states come from the cache's memos (the same numbers).
    again = sweep.pair_controls(ev, ("x", "y"), (tiny["x"], tiny["y"]), TEXTS, (), (0.5, 1.0), cache)
    assert [c.docs for c in again] == [c.docs for c in got[:2]]
    assert cache.computed == sum(len(ts) for ts in TEXTS.values())
    # The base is pristine afterwards: no adapter left injected, no weight left rewritten.
    assert cache.start() == LAYERS
    _close(sweep._score(ev, TEXTS, ev.base), _reference([(1.0, base)]))


def test_a_lower_layer_is_served_from_its_own_prefix(tiny: dict[str, Path], tmp_path: Path) -> None:
    """A LoRA that also changes layer 1 starts there (not from the layer-2 prefix already cached)."""
    ev = Evaluator(tiny["base"], torch.device("cpu"))
    cache = PrefixCache(ev.base)
    folder = _lora(tmp_path / "low", 3, layers=[1, 3])
    sweep._score(ev, TEXTS, cache.scorer(merged=["model.layers.2.mlp.down_proj"]))  # fills layer 2's
    model = PeftModel.from_pretrained(ev.base, str(folder)).eval()
    try:
        assert cache.start() == 1
        got = sweep._score(ev, TEXTS, cache.scorer())
    finally:
        ev.base = model.unload()
    _close(got, _reference([(1.0, _merged(tiny["base"], [(1.0, _deltas(folder))]))]))


def test_changes_outside_the_decoder_layers_are_refused(tiny: dict[str, Path], tmp_path: Path) -> None:
    ev = Evaluator(tiny["base"], torch.device("cpu"))
    cache = PrefixCache(ev.base)
    for path in ("lm_head", "model.embed_tokens", "model.norm"):
        with pytest.raises(ValueError, match="outside the decoder layers"):
            cache.start(merged=[path])
    folder = _lora(tmp_path / "emb", 4, layers=None, targets=["embed_tokens", "q_proj"])
    model = PeftModel.from_pretrained(ev.base, str(folder)).eval()
    try:
        with pytest.raises(ValueError, match="embed_tokens"):
            cache.start()
    finally:
        ev.base = model.unload()
    ids = torch.tensor([[5, 6, 7, 0], [5, 6, 7, 8]])
    with pytest.raises(ValueError, match="right padding"):
        cache.scorer()(ids, torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]]))


def test_the_self_check_catches_a_stale_prefix(tiny: dict[str, Path]) -> None:
    """A change below the cached layer that the guard cannot see (weights rewritten in place without
    saying so) makes the cached path differ from the full forward: the check raises."""
    ev = Evaluator(tiny["base"], torch.device("cpu"))
    cache = PrefixCache(ev.base)
    merged = ["model.layers.3.mlp.down_proj"]
    scorer = cache.scorer(merged=merged)
    sweep._score(ev, TEXTS, scorer)  # layer 3's prefix cached, checked once
    with torch.no_grad():
        ev.base.model.layers[0].mlp.down_proj.weight.mul_(3.0)
    cache._checked.clear()  # the next batch is checked again, as the first batch of a new cache is
    with pytest.raises(RuntimeError, match="differ from the full forward"):
        metrics.perplexities(scorer, ev.tok, [[t] for t in TEXTS["code"]], ev.device, ev.max_len)


def test_a_bounded_cache_evicts_prefixes_and_memos_without_changing_results(tiny: dict[str, Path]) -> None:
    """The prefixes and the named memos share one bound: a tiny one keeps the store within it (the
    memos drop documents, refilled as needed) and every control equals the unbounded cache's."""
    ev = Evaluator(tiny["base"], torch.device("cpu"))
    folders = (tiny["x"], tiny["y"])
    want = sweep.pair_controls(ev, ("x", "y"), folders, TEXTS, (0.5,), (0.5, 1.0), PrefixCache(ev.base))
    bound = 40_000  # a few documents' hidden states (64 floats per token)
    cache = PrefixCache(ev.base, max_bytes=bound)
    got = sweep.pair_controls(ev, ("x", "y"), folders, TEXTS, (0.5,), (0.5, 1.0), cache)
    assert 0 < cache.stored_bytes <= bound
    assert cache.computed > sum(len(ts) for ts in TEXTS.values())  # evicted prefixes were recomputed
    assert len(cache.memo(f"adapter {tiny['x'].resolve()}")) < sum(len(ts) for ts in TEXTS.values())
    assert [(c.kind, c.weights) for c in got] == [(c.kind, c.weights) for c in want]
    for c, w in zip(got, want, strict=True):
        _close(c.docs, w.docs)
