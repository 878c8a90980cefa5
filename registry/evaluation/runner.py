"""Evaluate the base model alone or with an adapter, loading the base once per evaluator."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..compose.device import compute_device
from . import metrics
from .datasets import Dataset
from .prefix import PrefixCache, PrefixMismatch
from .tokens import tokenizer_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalRequest:
    name: str
    metric: str  # perplexity | accuracy
    dataset: Dataset


class Evaluator:
    """The base model, resident, and the metrics of it with or without an adapter.

    With a prefix cache (`prefix_cache_bytes` > 0; default: the setting `eval_prefix_cache_mb` MiB), an
    adapter that changes only decoder layers k.. (k > 0) is scored from the base's hidden states
    entering layer k, computed once per document and kept across calls (prefix.py): in a warm process a
    search's candidates and every composition evaluated on the same documents share that computation.
    Anything else (an adapter on layer 0 or outside the decoder layers, a head that is not a bias-free
    linear map, a model the cache's self-check rejects) runs the full forward, as without the cache.
    The cache assumes the base's own weights are never rewritten in place (peft's injected layers are
    seen, a direct write to `base` is not): a caller that writes them turns the cache off
    (`prefix_cache_bytes=0`), as the real-model test's recomputation does."""

    def __init__(
        self, base_folder: Path, device: torch.device | None = None, prefix_cache_bytes: int | None = None
    ) -> None:
        from transformers import AutoModelForCausalLM

        self.device = device or compute_device()
        # transformers types PreTrainedModel.to through a decorator that drops `self`: its own typing bug.
        self.base = AutoModelForCausalLM.from_pretrained(base_folder).to(self.device).eval()  # type: ignore[arg-type]
        self.max_len = int(
            getattr(self.base.config, "max_position_embeddings", 0)
            or getattr(self.base.config, "n_positions", 1024)
        )
        self.tok = tokenizer_for(base_folder, int(self.base.config.vocab_size))
        # One base model is wrapped by one adapter at a time: concurrent tasks must not interleave. The
        # prefix cache is only used under this lock too (it reads the base's modules as they are now).
        self._lock = threading.Lock()
        if prefix_cache_bytes is None:
            from ..settings import get_settings

            prefix_cache_bytes = get_settings().eval_prefix_cache_mb * 2**20
        self.prefix = _prefix_cache(self.base, prefix_cache_bytes)

    def _metrics(self, model: metrics.Scorer, requests: list[EvalRequest]) -> dict[str, float]:
        out: dict[str, float] = {}
        ppl = [req for req in requests if req.metric == "perplexity"]
        if ppl:
            texts = [[r["text"] for r in req.dataset.rows] for req in ppl]
            values = metrics.perplexities(model, self.tok, texts, self.device, self.max_len)
            out.update({req.name: v for req, v in zip(ppl, values, strict=True)})
        acc = [req for req in requests if req.metric == "accuracy"]
        if acc:
            rows = [list(req.dataset.rows) for req in acc]
            values = metrics.accuracies(model, self.tok, rows, self.device, self.max_len)
            out.update({req.name: v for req, v in zip(acc, values, strict=True)})
        return {req.name: out[req.name] for req in requests}  # in the requests' order

    def _run(
        self, model: metrics.Scorer, cached: metrics.Scorer | None, requests: list[EvalRequest]
    ) -> dict[str, float]:
        """The metrics through `cached` (the prefix cache's scorer) when there is one, else `model`."""
        if cached is not None:
            try:
                return self._metrics(cached, requests)
            except PrefixMismatch as exc:
                # An architecture the cache's exactness argument does not hold for: full forwards from now.
                log.warning("prefix cache off for this evaluator: %s", exc)
                self.prefix = None
        return self._metrics(model, requests)

    def _start(self) -> PrefixCache | None:
        """The prefix cache when it serves the model as it is now (changed from a layer above 0)."""
        cache = self.prefix
        if cache is None or cache.base is not self.base:
            return None
        try:
            start = cache.start()
        except ValueError:  # a change outside the decoder layers: no prefix to share
            return None
        return cache if start > 0 else None

    def evaluate(self, adapter_folder: Path | None, requests: list[EvalRequest]) -> dict[str, float]:
        """Metrics of base + adapter (or the base alone when `adapter_folder` is None)."""
        from peft import PeftModel

        with self._lock:
            if adapter_folder is None:
                cache = self._start()
                return self._run(self.base, cache.scorer() if cache else None, requests)
            model = PeftModel.from_pretrained(self.base, str(adapter_folder)).to(self.device).eval()
            try:
                cache = self._start()
                return self._run(model, cache.scorer() if cache else None, requests)
            finally:
                # Remove the injected layers without merging, so the next adapter sees the pristine base.
                self.base = model.unload()

    def evaluate_ensemble(
        self, adapter_folders: list[Path], weights: list[float], requests: list[EvalRequest]
    ) -> dict[str, float]:
        """Metrics of the decoding-time composition base + sum_i w_i (logits_i - base) (decoding.py)."""
        from .decoding import ensemble_logits, load_ensemble

        with self._lock:
            model, names = load_ensemble(self.base, adapter_folders)
            try:
                cache = self._start()
                cached = _ensemble_from(cache, model, names, weights) if cache else None
                return self._run(ensemble_logits(model, names, weights), cached, requests)
            finally:
                self.base = model.unload()


def _prefix_cache(base: Any, max_bytes: int) -> PrefixCache | None:
    if max_bytes <= 0:
        return None
    try:
        return PrefixCache(base, max_bytes)
    except (AttributeError, TypeError, ValueError) as exc:  # no decoder layer list, or a head with a bias
        log.info("no prefix cache for %s: %s", type(base).__name__, exc)
        return None


def _ensemble_from(
    cache: PrefixCache, model: Any, names: list[str], weights: list[float]
) -> metrics.LogitsFn:
    """decoding.py's combination of each input's final hidden states (from `cache`), then the head once:
    the head is linear without bias, so this is the combination of the logits."""
    from .decoding import ensemble_logits

    hidden = cache.hidden()

    def final(name: str | None, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if name is None:
            with model.disable_adapter():
                return hidden(ids, mask)
        model.set_adapter(name)
        return hidden(ids, mask)

    combined = ensemble_logits(model, names, weights, final)
    return lambda ids, mask: cache.head(combined(ids, mask).to(cache.head.weight.dtype))
