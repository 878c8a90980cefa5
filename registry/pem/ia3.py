"""(IA)3: per module a scaling vector l stored as (out, 1), or (1, in) for feedforward modules."""

from __future__ import annotations

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
    register_kind,
)
from registry.pem.config_check import check_ia3
from registry.pem.types import IA3

SUFFIX = ".ia3_l"


@dataclass
class Ia3Module:
    l: torch.Tensor  # noqa: E741 - the paper's name; (out, 1) or (1, in)
    is_feedforward: bool

    def scaled(self, factor: float) -> Ia3Module:
        """The module whose delta (l - 1) is `factor` times this one's: 1 + factor (l - 1)."""
        l = 1.0 + factor * (self.l.float() - 1.0)  # noqa: E741
        return Ia3Module(l=l.to(self.l.dtype), is_feedforward=self.is_feedforward)

    def delta(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """The delta around the identity, l - 1 (float32) on `device`."""
        return self.l.to(device, torch.float32) - 1.0

    @staticmethod
    def exact_sum(modules: Sequence[Ia3Module], weights: Sequence[float]) -> Ia3Module:
        """1 + sum_i w_i (l_i - 1) in float64: the reference the controls measure a result against."""
        delta = sum(
            (w * (m.l.double() - 1.0) for m, w in zip(modules, weights, strict=True)), torch.zeros(())
        )
        return Ia3Module(l=1.0 + delta, is_feedforward=modules[0].is_feedforward)

    def inner(self, other: Ia3Module, device: torch.device | str = "cpu") -> float:
        """<l - 1, l' - 1> in float64."""
        return float(
            ((self.l.to(device, torch.float64) - 1.0) * (other.l.to(device, torch.float64) - 1.0)).sum()
        )

    def column_basis(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """The delta (l - 1) as one unit column (n x 1, float64), or n x 0 when it is zero: the
        subspace overlap of two (IA)3 modules is then their squared cosine."""
        v = (self.l.to(device, torch.float64) - 1.0).reshape(-1, 1)
        norm = float(v.norm())
        return v / norm if norm > 0 else v[:, :0]


class Ia3Kind(PemKind):
    declared = IA3

    def base_mismatch(
        self, shapes: Mapping[str, list[int]], in_features: int, out_features: int
    ) -> tuple[str, str] | None:
        shape = shapes["ia3_l"]
        if shape in ([out_features, 1], [1, in_features]):
            return None
        return f"ia3_l {shape}", f"ia3_l [{out_features}, 1] or [1, {in_features}]"

    def check_config(self, config: Mapping[str, Any]) -> None:
        check_ia3(config)

    def parse(self, config: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> dict[str, Ia3Module]:
        targets = config.get("target_modules")
        if targets is None:
            raise AdapterFormatError("adapter_config.json: target_modules is missing")
        ff = config.get("feedforward_modules") or []
        modules: dict[str, Ia3Module] = {}
        for key in sorted(tensors):
            tensor = tensors[key]
            if not key.endswith(SUFFIX):
                if modules_to_save_keys(config, key):
                    continue
                raise AdapterFormatError(f"tensor {key!r}: unexpected key for an (IA)3 adapter")
            path = module_path(key, SUFFIX)
            if not matches_target(path, targets):
                raise AdapterFormatError(f"module {path!r}: not matched by target_modules {targets!r}")
            is_ff = matches_target(path, ff)
            # PEFT scales the input features of feedforward layers and the outputs of the others.
            want = "(1, in_features)" if is_ff else "(out_features, 1)"
            if tensor.dim() != 2 or tensor.shape[0 if is_ff else 1] != 1:
                raise AdapterFormatError(f"tensor {key!r}: shape {list(tensor.shape)}, expected {want}")
            modules[path] = Ia3Module(l=tensor, is_feedforward=is_ff)
        if not modules:
            raise AdapterFormatError("adapter_model.safetensors: no ia3_l tensors")
        return modules

    def to_tensors(self, modules: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        return {KEY_PREFIX + path + SUFFIX: m.l.contiguous() for path, m in modules.items()}

    def metadata(self, config: Mapping[str, Any], modules: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "r": None,
            "lora_alpha": None,
            "use_rslora": False,
            "module_shapes": {p: {"ia3_l": list(m.l.shape)} for p, m in modules.items()},
        }


register_kind(Ia3Kind())
