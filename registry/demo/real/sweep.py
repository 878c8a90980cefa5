"""The pair sweep, in process with one resident model: for every pair of domain LoRAs, the controls
beside each method claim, evaluated on the two parents' own domains (the retention verdicts).

- Scaled sums `c (D_x + D_y)` for c in `plan.SCALES`: both LoRAs active at once in one PeftModel
  (peft adds their deltas), each module's scaling multiplied by c. c = 1 is the exact sum, what
  `delta_cat` registers; c < 1 is the shrinkage control for any method whose result is smaller than
  the exact sum (`core_merge`'s is about 0.86 x on matched LoRAs).
- Decoding time at 0.5/0.5 (an average of logits) and at 1/1 (`l_x + l_y - base`, an extrapolation),
  with the product's own combination (`registry.evaluation.decoding`).
- The product's methods in `plan.tuned_methods` (`core_merge`, and in the full run `ties`, `knots`,
  `tsv`, `iso_c`): composed by the engine (`registry.compose.compose`) from the registered parents'
  files (a pair method a flow already composed from them, `core_merge`: its registered result, the
  same engine result), their result written into the resident base's weights (W + s B A per module,
  float64 product) for the evaluation, at their validation-chosen s only.
- Each variant at its own scale chosen on validation (`Tuning`): the scaled sum's c, and each method's
  result times s (the product's `search.scale`: B times s), s from the same grid, chosen by the pooled
  perplexity of the pair's validation documents (the product's `perplexity` of one dataset); the
  variant at the chosen scale is then scored on the test documents. A method is compared with the
  scaled sum each at its best scale, so neither wins by the other's untuned scale.

Why not through the flow: each of these is one evaluation of two already registered LoRAs, which the
flow would first compose, store and register (tens of seconds of overhead per run against a second of
evaluation); nothing here is registered, and tests/test_demo_real.py recomputes every value from the
registered parents with a formula written in the test (merged weights, not peft's multi-adapter path).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch

from registry.evaluation import Evaluator, metrics
from registry.evaluation.decoding import ensemble_logits, load_ensemble
from registry.evaluation.prefix import Memo, PrefixCache
from registry.pem import PemAdapter

from .pairs import control_label

_T = TypeVar("_T")


@dataclass(frozen=True)
class Control:
    """One evaluated control of a pair: `kind` scaled | decoding | tuned, its weights, per-document perplexity
    on each of the pair's own domains (domain -> values in the report's document order)."""

    pair: tuple[str, str]  # adapter refs
    kind: str  # scaled | decoding | tuned
    weights: tuple[float, float]
    docs: dict[str, list[float]]
    method: str = ""  # kind tuned: "sum" or the engine's method
    fields: dict[str, Any] = field(default_factory=dict)  # kind tuned, an engine method: its parameters
    # kind tuned: (scale, pooled validation perplexity) per candidate scale; `weights` is the chosen one
    val: tuple[tuple[float, float], ...] = ()

    @property
    def label(self) -> str:
        return control_label(self.kind, self.weights, self.method)


def _score(
    evaluator: Evaluator, texts: dict[str, list[str]], scorer: metrics.Scorer
) -> dict[str, list[float]]:
    """Per-document perplexity on `texts` (domain -> one window per document), by domain."""
    flat = [[t] for d in texts for t in texts[d]]
    values = metrics.perplexities(scorer, evaluator.tok, flat, evaluator.device, evaluator.max_len)
    out: dict[str, list[float]] = {}
    k = 0
    for d in texts:
        out[d] = values[k : k + len(texts[d])]
        k += len(texts[d])
    return out


@dataclass(frozen=True)
class Tuning:
    """What choosing a variant's scale on validation needs: the pair's validation windows (both own
    domains, pooled into one dataset) and the candidate scales."""

    val: list[str]
    scales: tuple[float, ...]


def _pooled(evaluator: Evaluator, texts: list[str], scorer: metrics.Scorer) -> float:
    """The perplexity of `texts` as one dataset (the product's `perplexity` metric: pooled tokens)."""
    return metrics.perplexities(scorer, evaluator.tok, [texts], evaluator.device, evaluator.max_len)[0]


def _choose(val: list[tuple[float, float]]) -> float:
    """The scale of the lowest validation perplexity (the first of equals: the grid's order)."""
    return min(val, key=lambda sv: sv[1])[0]


@contextmanager
def _scaled(model: Any, names: Sequence[str], c: float) -> Iterator[None]:
    """Both LoRAs active, every module's scaling for them times c; restored on exit."""
    from peft.tuners.lora import LoraLayer

    layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
    saved = [{n: m.scaling[n] for n in names if n in m.scaling} for m in layers]
    model.base_model.set_adapter(list(names))
    try:
        for m, s in zip(layers, saved, strict=True):
            for n, v in s.items():
                m.scaling[n] = v * c
        yield
    finally:
        for m, s in zip(layers, saved, strict=True):
            m.scaling.update(s)


def pair_controls(
    evaluator: Evaluator,
    pair: tuple[str, str],
    folders: tuple[Path, Path],
    texts: dict[str, list[str]],
    scales: Sequence[float],
    decoding: Sequence[float],
    cache: PrefixCache | None = None,
    tuning: Tuning | None = None,
) -> list[Control]:
    """Every control of one pair on `texts` (domain -> one window per document): the scaled sums,
    then decoding time at each weight in `decoding` (both inputs at that weight); with `tuning`, last,
    the scaled sum at the c its validation perplexity chooses (kind tuned, method "sum").

    Every variant's logits come from `cache` (prefix.py): pass one cache for the evaluator's base to
    every pair of a sweep, so each document's prefix is computed once per sweep (None: a fresh one,
    shared by this pair's controls only). Each input's and the base's final hidden states are computed
    once and kept in the cache's memos: every decoding weight, and every later pair with that input on
    those documents, only combines them and runs the head."""
    cache = _cache_for(evaluator, cache)
    seqs = _seqs(evaluator, texts)
    model, names = load_ensemble(evaluator.base, list(folders))
    memos: dict[str | None, Memo] = {
        n: cache.memo(f"adapter {f.resolve()}") for n, f in zip(names, folders, strict=True)
    }
    memos[None] = cache.memo("base")  # every adapter disabled

    def final(name: str | None, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if name is None:
            with model.disable_adapter():
                return cache.hidden(memos[None])(ids, mask)
        model.set_adapter(name)
        return cache.hidden(memos[name])(ids, mask)

    def run(scorer: metrics.Scorer) -> dict[str, list[float]]:
        return _score(evaluator, texts, scorer)

    out = []
    try:
        with torch.inference_mode():
            if decoding:
                for name in names:
                    model.set_adapter(name)
                    cache.fill(seqs, memos[name])
            for w in decoding:
                # The product's combination (decoding.py) of the final hidden states, then the head:
                # the head is linear (PrefixCache), so this is the combination of the logits.
                combined = ensemble_logits(model, names, [w, w], final)
                out.append(Control(pair, "decoding", (w, w), run(_then_head(cache, combined))))
            for c in scales:
                with _scaled(model, names, c):
                    memo: Memo = {}
                    cache.fill(seqs, memo)
                    out.append(Control(pair, "scaled", (c, c), run(cache.scorer(memo=memo))))
            if tuning is not None:
                val: list[tuple[float, float]] = []
                for c in tuning.scales:
                    with _scaled(model, names, c):
                        memo = {}
                        cache.fill(_texts_ids(evaluator, tuning.val), memo)
                        val.append((c, _pooled(evaluator, tuning.val, cache.scorer(memo=memo))))
                best = _choose(val)
                done = next((x for x in out if x.kind == "scaled" and x.weights[0] == best), None)
                if done is None:
                    with _scaled(model, names, best):
                        memo = {}
                        cache.fill(seqs, memo)
                        docs = run(cache.scorer(memo=memo))
                else:
                    docs = done.docs
                out.append(Control(pair, "tuned", (best, best), docs, "sum", val=tuple(val)))
    finally:
        evaluator.base = model.unload()
    return out


def _then_head(cache: PrefixCache, hidden: metrics.LogitsFn) -> metrics.LogitsFn:
    return lambda ids, mask: cache.head(hidden(ids, mask))


def _seqs(evaluator: Evaluator, texts: dict[str, list[str]]) -> list[list[int]]:
    return [metrics.scored_ids(evaluator.tok, t, evaluator.max_len) for d in texts for t in texts[d]]


def _texts_ids(evaluator: Evaluator, texts: list[str]) -> list[list[int]]:
    return _seqs(evaluator, {"": texts})


def _cache_for(evaluator: Evaluator, cache: PrefixCache | None) -> PrefixCache:
    if cache is None:
        return PrefixCache(evaluator.base)
    if cache.base is not evaluator.base:
        raise ValueError("the prefix cache was made for another base model than the evaluator's")
    return cache


@contextmanager
def _merged(model: Any, adapter: PemAdapter, times: float = 1.0) -> Iterator[None]:
    """The base's weights W + times s B A for every module of a LoRA `adapter`; restored on exit."""
    saved: dict[str, torch.Tensor] = {}
    try:
        for path, m in adapter.modules.items():
            layer = model.get_submodule(path)
            saved[path] = layer.weight.data
            delta = times * m.scale * (m.B.double() @ m.A.double())
            layer.weight.data = (layer.weight.data.double() + delta).to(saved[path].dtype)
        yield
    finally:
        for path, w in saved.items():
            model.get_submodule(path).weight.data = w


def composed(
    adapters: Sequence[PemAdapter], fields: dict[str, Any], weights: Sequence[float] = (1.0, 1.0)
) -> PemAdapter:
    """The product engine's result of a pair method (plan.PairMethod.fields) at `weights`."""
    from registry.compose import compose

    return compose(
        list(adapters),
        list(weights),
        fields["method"],
        rank=fields.get("rank"),
        density=fields.get("density"),
        method_params=fields.get("params"),
    ).adapter


def _score_merged(
    evaluator: Evaluator,
    cache: PrefixCache,
    adapter: PemAdapter,
    times: float,
    seqs: list[list[int]],
    run: Callable[[metrics.LogitsFn], _T],
) -> _T:
    """`run` on the scorer of the base with `adapter` times `times` merged into its weights."""
    with torch.inference_mode(), _merged(evaluator.base, adapter, times):
        memo: Memo = {}
        cache.fill(seqs, memo, merged=adapter.modules)
        return run(cache.scorer(adapter.modules, memo))


def method_controls(
    evaluator: Evaluator,
    pair: tuple[str, str],
    adapters: tuple[PemAdapter, PemAdapter],
    texts: dict[str, list[str]],
    methods: Sequence[Any],
    tuning: Tuning,
    cache: PrefixCache | None = None,
    results: Mapping[str, PemAdapter] | None = None,
) -> list[Control]:
    """Each of `methods` (plan.PairMethod) applied to the pair at its weights, composed by the product's
    engine, its result times the scale its validation perplexity chooses (`tuning`), then evaluated on
    `texts` (kind tuned, method the engine's method name), with the evaluator's resident base, from
    `cache` (as in `pair_controls`; the changed modules are the result's, which the cache checks against
    its layers). `results`: by method label, the engine's result of that method, fields and weights on
    this pair when it is already at hand (the flow's registered composition): not composed again.

    Only the chosen scale is scored on the test documents: a method at scale 1 beside the scaled sum
    at c = 1 compares each at a scale neither chose (the untuned comparison the tuned one replaces),
    and it cost one more test evaluation per method and pair."""
    cache = _cache_for(evaluator, cache)
    seqs = _seqs(evaluator, texts)
    val_ids = _texts_ids(evaluator, tuning.val)
    out = []
    for pm in methods:
        f = pm.fields
        result = (results or {}).get(pm.label)
        if result is None:
            result = composed(adapters, f, pm.weights)
        score = functools.partial(_score_merged, evaluator, cache, result)
        val = [
            (s, score(s, val_ids, lambda scorer: _pooled(evaluator, tuning.val, scorer)))
            for s in tuning.scales
        ]
        best = _choose(val)
        docs = score(best, seqs, lambda scorer: _score(evaluator, texts, scorer))
        out.append(Control(pair, "tuned", (best, best), docs, f["method"], dict(f), val=tuple(val)))
    return out
