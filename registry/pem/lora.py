"""LoRA: per module A (r x in), B (out x r), scale alpha/r (alpha/sqrt(r) with rslora)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from registry.errors import AdapterFormatError
from registry.pem.base import (
    KEY_PREFIX,
    PemKind,
    matches_target,
    module_path,
    modules_to_save_keys,
    pattern_value,
    register_kind,
)
from registry.pem.config_check import check_lora
from registry.pem.types import LORA

A_SUFFIX = ".lora_A.weight"
B_SUFFIX = ".lora_B.weight"


@dataclass
class LoraModule:
    A: torch.Tensor  # (r, in_features)
    B: torch.Tensor  # (out_features, r)
    alpha: float
    use_rslora: bool = False

    @property
    def r(self) -> int:
        return int(self.A.shape[0])

    @property
    def scale(self) -> float:
        return self.alpha / (math.sqrt(self.r) if self.use_rslora else self.r)

    def scaled(self, factor: float) -> LoraModule:
        """The module whose delta is `factor` times this one's: B scaled (A, alpha and r kept)."""
        return LoraModule(
            A=self.A,
            B=(self.B.float() * factor).to(self.B.dtype),
            alpha=self.alpha,
            use_rslora=self.use_rslora,
        )

    def delta(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """The dense delta s B A (out x in, float32) on `device`."""
        b, a = self.B.to(device, torch.float32), self.A.to(device, torch.float32)
        return (b @ a).mul_(self.scale)

    @staticmethod
    def exact_sum(modules: Sequence[LoraModule], weights: Sequence[float]) -> LoraModule:
        """sum_i w_i s_i B_i A_i as one module of concatenated float32 factors (scale 1), as `delta_cat`
        composes it: the reference the controls measure a result against."""
        b = torch.cat([m.B.float() * (w * m.scale) for m, w in zip(modules, weights, strict=True)], dim=1)
        a = torch.cat([m.A.float() for m in modules], dim=0)
        return LoraModule(A=a, B=b, alpha=float(a.shape[0]))

    def inner(self, other: LoraModule, device: torch.device | str = "cpu") -> float:
        """<s B A, s' B' A'>_F = s s' sum((B^T B') * (A A'^T)): r x r' work, no d x k matrix. The
        d-sized products in float32 (they are the cost; float64 is 5x slower on CPU), summed in float64."""
        b, a = self.B.to(device, torch.float32), self.A.to(device, torch.float32)
        ob, oa = other.B.to(device, torch.float32), other.A.to(device, torch.float32)
        return self.scale * other.scale * float(((b.T @ ob).double() * (a @ oa.T).double()).sum())

    def column_basis(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """An orthonormal basis (out x rank, float64) of the column space of B A, from the factors with
        r x r decompositions only: col(B A) = col(B (A A^T)^(1/2)) =: col(M), and with M^T M = V L V^T,
        U = M V L^(-1/2) over the eigenvalues above 1e-12 x the largest (singular values above 1e-6 x):
        a zero-padded or rank-deficient factor adds no direction. float64 throughout (r x r eigen-
        problems square the condition number)."""
        b, a = self.B.to(device, torch.float64), self.A.to(device, torch.float64)
        la, va = torch.linalg.eigh(a @ a.T)
        m = b @ (va * la.clamp(min=0).sqrt()) @ va.T
        lm, vm = torch.linalg.eigh(m.T @ m)
        if lm.numel() == 0 or float(lm[-1]) <= 0.0:
            return b[:, :0]
        keep = lm > 1e-12 * lm[-1]
        return m @ (vm[:, keep] / lm[keep].sqrt())


def lora_scale(alpha: float, r: int, use_rslora: bool) -> float:
    return alpha / (math.sqrt(r) if use_rslora else r)


class LoraKind(PemKind):
    declared = LORA

    def base_mismatch(
        self, shapes: Mapping[str, list[int]], in_features: int, out_features: int
    ) -> tuple[str, str] | None:
        a, b = shapes["lora_A"], shapes["lora_B"]
        if a[1] == in_features and b[0] == out_features:
            return None
        return f"lora_A {a}, lora_B {b}", f"lora_A [r, {in_features}], lora_B [{out_features}, r]"

    def check_config(self, config: Mapping[str, Any]) -> None:
        check_lora(config)

    def parse(self, config: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> dict[str, LoraModule]:
        if config.get("use_dora"):
            raise AdapterFormatError(
                "adapter_config.json: use_dora=true (DoRA) is not supported: its magnitude vectors "
                "renormalise each weight, so deltas do not add linearly"
            )
        if config.get("lora_bias"):
            raise AdapterFormatError("adapter_config.json: lora_bias=true is not supported (bias deltas)")
        targets = config.get("target_modules")
        if targets is None:
            raise AdapterFormatError("adapter_config.json: target_modules is missing")
        r_default = config.get("r")
        if not isinstance(r_default, int) or r_default <= 0:
            raise AdapterFormatError(f"adapter_config.json: r must be a positive integer, got {r_default!r}")
        alpha_default = config.get("lora_alpha", r_default)
        use_rslora = bool(config.get("use_rslora", False))

        pairs: dict[str, dict[str, tuple[str, torch.Tensor]]] = {}
        for key, tensor in tensors.items():
            if key.endswith(A_SUFFIX) or key.endswith(B_SUFFIX):
                role = "A" if key.endswith(A_SUFFIX) else "B"
                path = module_path(key, A_SUFFIX if role == "A" else B_SUFFIX)
                pairs.setdefault(path, {})[role] = (key, tensor)
            elif "lora_magnitude_vector" in key:
                raise AdapterFormatError(f"tensor {key!r}: DoRA magnitude vectors are not supported")
            elif modules_to_save_keys(config, key):
                continue
            else:
                raise AdapterFormatError(f"tensor {key!r}: unexpected key for a LoRA adapter")
        if not pairs:
            raise AdapterFormatError("adapter_model.safetensors: no lora_A/lora_B tensors")

        modules: dict[str, LoraModule] = {}
        for path in sorted(pairs):
            roles = pairs[path]
            for role in ("A", "B"):
                if role not in roles:
                    raise AdapterFormatError(f"module {path!r}: lora_{role} tensor is missing")
            (_, a), (_, b) = roles["A"], roles["B"]
            if not matches_target(path, targets):
                raise AdapterFormatError(f"module {path!r}: not matched by target_modules {targets!r}")
            if a.dim() != 2 or b.dim() != 2:
                raise AdapterFormatError(f"module {path!r}: lora_A and lora_B must be 2-D")
            if a.shape[0] != b.shape[1]:
                raise AdapterFormatError(
                    f"module {path!r}: lora_A {list(a.shape)} and lora_B {list(b.shape)} inner ranks differ"
                )
            expected = pattern_value(config.get("rank_pattern"), path, r_default)
            if a.shape[0] != expected:
                raise AdapterFormatError(
                    f"module {path!r}: rank {a.shape[0]} but the config says r={expected}"
                )
            alpha = pattern_value(config.get("alpha_pattern"), path, alpha_default)
            modules[path] = LoraModule(A=a, B=b, alpha=float(alpha), use_rslora=use_rslora)
        return modules

    def to_tensors(self, modules: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for path, m in modules.items():
            out[KEY_PREFIX + path + A_SUFFIX] = m.A.contiguous()
            out[KEY_PREFIX + path + B_SUFFIX] = m.B.contiguous()
        return out

    def metadata(self, config: Mapping[str, Any], modules: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "r": max((m.r for m in modules.values()), default=config.get("r")),
            "lora_alpha": config.get("lora_alpha"),
            "use_rslora": bool(config.get("use_rslora", False)),
            "module_shapes": {
                p: {"lora_A": list(m.A.shape), "lora_B": list(m.B.shape)} for p, m in modules.items()
            },
        }


register_kind(LoraKind())
