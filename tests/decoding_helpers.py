"""Hand-written decoding-time combination: separately loaded models' logits, combined in float64."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM


def separate_logits(base: Path, folder: Path | None, ids: torch.Tensor) -> torch.Tensor:
    """Logits of a freshly loaded base (+ one adapter), in float64."""
    model = AutoModelForCausalLM.from_pretrained(base).eval()
    if folder is not None:
        model = PeftModel.from_pretrained(model, str(folder)).eval()
    with torch.no_grad():
        return model(input_ids=ids).logits.double()


def hand_combined(base: Path, folders: list[Path], weights: list[float], ids: torch.Tensor) -> torch.Tensor:
    plain = separate_logits(base, None, ids)
    return plain + sum(
        w * (separate_logits(base, f, ids) - plain) for f, w in zip(folders, weights, strict=True)
    )


def hand_perplexity(base: Path, folders: list[Path], weights: list[float], texts: list[str]) -> float:
    """Byte-tokenised texts (the tiny models have no tokenizer), one at a time."""
    nll, count = 0.0, 0
    for text in texts:
        ids = torch.tensor([list(text.encode())])
        logp = torch.log_softmax(hand_combined(base, folders, weights, ids)[0, :-1], dim=-1)
        nll -= float(logp.gather(-1, ids[0, 1:, None]).sum())
        count += ids.shape[1] - 1
    return math.exp(nll / count)
