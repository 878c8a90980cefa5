"""Evaluate the base model alone or with an adapter, loading the base once per evaluator."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from ..compose.device import compute_device
from . import metrics
from .datasets import Dataset
from .tokens import tokenizer_for


@dataclass(frozen=True)
class EvalRequest:
    name: str
    metric: str  # perplexity | accuracy
    dataset: Dataset


class Evaluator:
    def __init__(self, base_folder: Path, device: torch.device | None = None) -> None:
        from transformers import AutoModelForCausalLM

        self.device = device or compute_device()
        # transformers types PreTrainedModel.to through a decorator that drops `self`: its own typing bug.
        self.base = AutoModelForCausalLM.from_pretrained(base_folder).to(self.device).eval()  # type: ignore[arg-type]
        self.max_len = int(
            getattr(self.base.config, "max_position_embeddings", 0)
            or getattr(self.base.config, "n_positions", 1024)
        )
        self.tok = tokenizer_for(base_folder, int(self.base.config.vocab_size))
        # One base model is wrapped by one adapter at a time: concurrent tasks must not interleave.
        self._lock = threading.Lock()

    def _run(self, model: metrics.Scorer, requests: list[EvalRequest]) -> dict[str, float]:
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

    def evaluate(self, adapter_folder: Path | None, requests: list[EvalRequest]) -> dict[str, float]:
        """Metrics of base + adapter (or the base alone when `adapter_folder` is None)."""
        from peft import PeftModel

        with self._lock:
            if adapter_folder is None:
                return self._run(self.base, requests)
            model = PeftModel.from_pretrained(self.base, str(adapter_folder)).to(self.device).eval()
            try:
                return self._run(model, requests)
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
                return self._run(ensemble_logits(model, names, weights), requests)
            finally:
                self.base = model.unload()
