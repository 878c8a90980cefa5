"""Decoding-time composition (proxy-tuning): combine next-token logits instead of weights.

    logits = base + sum_i w_i (logits_i - base) = (1 - sum_i w_i) base + sum_i w_i logits_i

One PeftModel holds every input adapter over one copy of the base; per batch it runs the base once
(adapters disabled; not at all when its weight 1 - sum_i w_i is 0) and each adapter once
(`set_adapter`). Memory is bounded: the accumulator plus one model's logits for the batch (the base
term is folded into the accumulator first, with weight 1 - sum_i w_i, so base logits are not kept
beside the adapters'). The batch size is metrics.BATCH.
No parameters are merged, so the inputs cannot interfere in weight space; the price is one forward
pass per input at inference. Comparing this with the weight-space merge of the same weighted inputs
measures the interference cost (flows: `compare_decoding: true`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from .gates import LOWER_IS_BETTER
from .metrics import LogitsFn

FORMULA = "logits = base + sum_i w_i (logits_i - base)"


def adapter_names(n: int) -> list[str]:
    return [f"input{i}" for i in range(n)]


def load_ensemble(base: torch.nn.Module, adapter_folders: Sequence[Path]) -> tuple[Any, list[str]]:
    """A PeftModel over `base` with every adapter loaded under its own name (eval mode).

    Call `.unload()` on it afterwards to get the pristine base back (nothing is merged)."""
    from peft import PeftModel

    names = adapter_names(len(adapter_folders))
    model = PeftModel.from_pretrained(base, str(adapter_folders[0]), adapter_name=names[0])
    for name, folder in zip(names[1:], adapter_folders[1:], strict=True):
        model.load_adapter(str(folder), adapter_name=name)
    return model.eval(), names


# (adapter name, or None for the base with every adapter disabled; ids; mask) -> that model's logits
Forward = Callable[[str | None, torch.Tensor, torch.Tensor], torch.Tensor]


def peft_forward(model: Any) -> Forward:
    """One forward pass of the PeftModel `model` with one adapter active, or none (the base)."""

    def forward(name: str | None, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if name is None:
            with model.disable_adapter():
                return model(input_ids=ids, attention_mask=mask).logits
        model.set_adapter(name)
        return model(input_ids=ids, attention_mask=mask).logits

    return forward


def ensemble_logits(
    model: Any, names: Sequence[str], weights: Sequence[float], forward: Forward | None = None
) -> LogitsFn:
    """(ids, mask) -> float32 combined logits; one forward pass per input and one for the base (none
    when the base's weight 1 - sum_i w_i is 0, e.g. the 0.5/0.5 average of two). `forward` computes
    each model's logits (default: `peft_forward(model)`; the pair sweep serves them from a prefix cache)."""
    if len(names) != len(weights):
        raise ValueError(f"{len(weights)} weights for {len(names)} adapters")
    base_weight = 1.0 - sum(weights)
    run = forward or peft_forward(model)

    def combined(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        acc: torch.Tensor | None = None
        if base_weight != 0.0 or not names:
            acc = run(None, ids, mask).float().mul_(base_weight)
        for name, weight in zip(names, weights, strict=True):
            logits = run(name, ids, mask).float()
            acc = logits.mul_(weight) if acc is None else acc.add_(logits, alpha=weight)
        assert acc is not None
        return acc

    return combined


def interference_cost(
    weight_space: dict[str, float], decoding_time: dict[str, float], metric_of: dict[str, str]
) -> list[dict[str, Any]]:
    """Per evaluation: both results, their difference (weight-space minus decoding-time) and the
    interference cost = how much worse the weight-space merge is (positive: worse; perplexity: the
    excess, accuracy: the shortfall)."""
    rows = []
    for name, metric in metric_of.items():
        ws, dt = weight_space[name], decoding_time[name]
        rows.append(
            {
                "evaluation": name,
                "metric": metric,
                "weight_space": ws,
                "decoding_time": dt,
                "difference": ws - dt,
                "interference_cost": ws - dt if LOWER_IS_BETTER[metric] else dt - ws,
            }
        )
    return rows
