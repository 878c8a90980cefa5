"""Shared test material for the engine tests: a cached library of peft-made adapters and
independent dense reference formulas (read straight from safetensors, not via registry.pem)."""

from __future__ import annotations

import atexit
import json
import math
import shutil
import tempfile
from functools import cache
from pathlib import Path

import torch
from safetensors.torch import load_file

from tests.factories import make_ia3, make_lora, save_tiny_base

PREFIX = "base_model.model."


@cache
def library() -> dict[str, Path]:
    """Built once per process (peft model construction dominates test time)."""
    root = Path(tempfile.mkdtemp(prefix="pem-lib-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    lib = {
        "l1": make_lora(root / "l1", seed=1),
        "l2": make_lora(root / "l2", seed=2),
        "l3": make_lora(root / "l3", seed=3, alpha=16),
        "l_r8": make_lora(root / "l_r8", seed=4, r=8, alpha=4),
        "l_rs": make_lora(root / "l_rs", seed=5, use_rslora=True, alpha=6),
        "l_qv": make_lora(root / "l_qv", seed=6, targets=["q_proj", "v_proj"]),
        "l_f16": make_lora(root / "l_f16", seed=7, dtype=torch.float16),
        "l_bf16": make_lora(root / "l_bf16", seed=8, dtype=torch.bfloat16),
        "g1": make_lora(root / "g1", arch="gpt2", seed=1),
        "g2": make_lora(root / "g2", arch="gpt2", seed=2),
        "i1": make_ia3(root / "i1", seed=2),
        "i2": make_ia3(root / "i2", seed=3),
        "i_sub": make_ia3(root / "i_sub", seed=4, targets=(["k_proj", "down_proj"], ["down_proj"])),
        "gi1": make_ia3(root / "gi1", arch="gpt2", seed=2),
        "gi2": make_ia3(root / "gi2", arch="gpt2", seed=5),
        "base_llama": save_tiny_base(root / "base_llama", "llama"),
        "base_gpt2": save_tiny_base(root / "base_gpt2", "gpt2"),
    }
    return lib


def raw(folder: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    config = json.loads((folder / "adapter_config.json").read_text())
    return config, load_file(folder / "adapter_model.safetensors")


def lora_factors(folder: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor, float]]:
    """{module: (A, B, scale)} in float64, scale from the config (rank/alpha patterns by exact path)."""
    config, tensors = raw(folder)
    out = {}
    for key, a in tensors.items():
        if not key.endswith(".lora_A.weight"):
            continue
        path = key[len(PREFIX) : -len(".lora_A.weight")]
        b = tensors[PREFIX + path + ".lora_B.weight"]
        r = a.shape[0]
        alpha = (config.get("alpha_pattern") or {}).get(path, config["lora_alpha"])
        scale = alpha / (math.sqrt(r) if config.get("use_rslora") else r)
        out[path] = (a.double(), b.double(), scale)
    return out


def lora_deltas(folder: Path) -> dict[str, torch.Tensor]:
    return {p: s * (b @ a) for p, (a, b, s) in lora_factors(folder).items()}


def ia3_vectors(folder: Path) -> dict[str, torch.Tensor]:
    _, tensors = raw(folder)
    return {k[len(PREFIX) : -len(".ia3_l")]: t.double() for k, t in tensors.items()}


def weighted_delta_sum(folders: list[Path], weights: list[float]) -> dict[str, torch.Tensor]:
    total: dict[str, torch.Tensor] = {}
    for folder, w in zip(folders, weights, strict=True):
        for path, d in lora_deltas(folder).items():
            total[path] = total.get(path, torch.zeros_like(d)) + w * d
    return total


def assert_close(actual: torch.Tensor, expected: torch.Tensor, tol: float = 1e-5) -> None:
    err = (actual.double() - expected.double()).abs().max().item()
    scale = max(expected.double().abs().max().item(), 1e-12)
    assert err <= tol * scale, f"max abs error {err} > {tol} * {scale}"


def thin_svd(m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The contract's thin SVD of a dense float64 matrix: singular values above 1e-6 x the largest."""
    u, s, vh = torch.linalg.svd(m.double(), full_matrices=False)
    keep = int((s > s[0] * 1e-6).sum())
    return u[:, :keep], s[:keep], vh[:keep]


def top_magnitude(t: torch.Tensor, density: float) -> torch.Tensor:
    """t with all but its int(density * numel) largest |entries| set to 0."""
    k = int(density * t.numel())
    flat = t.flatten()
    kept = torch.zeros_like(flat)
    index = flat.abs().argsort(descending=True)[:k]
    kept[index] = flat[index]
    return kept.view_as(t)


def ties_elect(trimmed: list[torch.Tensor], majority_sign: str) -> torch.Tensor:
    """TIES on already trimmed, weighted tensors: elect per entry (total: sign of the sum; frequency:
    sign of the sum of signs; a tie to +), then the mean of the nonzero values with that sign."""
    t = torch.stack([x.double() for x in trimmed])
    votes = t.sum(0) if majority_sign == "total" else t.sign().sum(0)
    elected = torch.where(votes >= 0, 1.0, -1.0).double()
    agree = t.sign() == elected
    return (t * agree).sum(0) / agree.sum(0).clamp(min=1)


def lora_product(m) -> torch.Tensor:
    """The delta a composed LoRA module applies, float64."""
    return m.scale * (m.B.double() @ m.A.double())
