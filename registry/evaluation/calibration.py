"""Calibration for core_merge's `importance` criterion: activation norms of the base model.

For each target module, the L2 norm over every calibration token of each input feature and each
output feature of the base module (adapters off). core_merge scores an entry of a weighted delta T
by |T[o, c]| * ||X[:, c]|| (LoRA; the change that entry makes to the module's output on this data,
as in Wanda pruning) or |T_j| times the norm of the activation l_j scales ((IA)3). Texts are run one
at a time (no padding to mask out); the calibration set is expected to be small.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..compose.core_merge import ActivationNorms
from ..errors import InvalidInput
from .tokens import Tokenizer


@torch.inference_mode()
def activation_norms(
    model: torch.nn.Module, tok: Tokenizer, texts: Sequence[str], paths: Sequence[str], max_len: int
) -> dict[str, ActivationNorms]:
    """`paths`: module names inside `model` (as in adapter files, without `base_model.model.`)."""
    named = dict(model.named_modules())
    missing = [p for p in paths if p not in named]
    if missing:
        raise InvalidInput(f"calibration: the base model has no module {missing[0]!r}", field="calibration")
    sums: dict[str, list[torch.Tensor]] = {}

    def hook(path: str) -> Callable[[torch.nn.Module, tuple[Any, ...], torch.Tensor], None]:
        def record(_module: torch.nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> None:
            x = args[0].double().reshape(-1, args[0].shape[-1]).square().sum(0)
            y = output.double().reshape(-1, output.shape[-1]).square().sum(0)
            if path in sums:
                sums[path][0] += x
                sums[path][1] += y
            else:
                sums[path] = [x, y]

        return record

    handles = [named[p].register_forward_hook(hook(p)) for p in paths]
    try:
        device = next(model.parameters()).device
        used = 0
        for text in texts:
            ids = tok.encode(text)[-max_len:]
            if ids:
                model(input_ids=torch.tensor([ids], device=device))
                used += 1
    finally:
        for handle in handles:
            handle.remove()
    if not used:
        raise InvalidInput("calibration: the dataset has no non-empty text", field="calibration")
    return {p: ActivationNorms(input=s[0].sqrt().cpu(), output=s[1].sqrt().cpu()) for p, s in sums.items()}


def save_norms(norms: dict[str, ActivationNorms], path: Path) -> None:
    tensors = {f"{p}.input": n.input.contiguous() for p, n in norms.items()}
    tensors.update({f"{p}.output": n.output.contiguous() for p, n in norms.items()})
    save_file(tensors, str(path))


def load_norms(path: Path) -> dict[str, ActivationNorms]:
    tensors = load_file(str(path))
    paths = {k.rsplit(".", 1)[0] for k in tensors}
    return {p: ActivationNorms(input=tensors[f"{p}.input"], output=tensors[f"{p}.output"]) for p in paths}
