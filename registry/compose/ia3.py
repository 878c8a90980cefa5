"""(IA)3 composition around the identity: l = 1 + sum_i w_i (l_i - 1) (pruning, core_merge on the l_i - 1)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from registry.compose.base import Composer, Entry, MethodParams, finite_f32, register_composer
from registry.compose.core_merge import module_norms
from registry.compose.dense import DenseRule, dense_names, dense_rule, weighted_sum
from registry.compose.methods import get_method
from registry.compose.targets import unify
from registry.errors import IncompatibleAdapters
from registry.pem import Ia3Module, PemAdapter
from registry.pem.types import IA3

# The factor-space methods of the table on (l_i - 1) are the exact weighted sum; the dense ones are
# compose/dense.py's, shared with LoRA.
FACTOR_RULES: dict[str, DenseRule] = {
    "linear": weighted_sum,
    "delta_cat": weighted_sum,
    "delta_svd": weighted_sum,
}


class Ia3Composer(Composer):
    pem_type = IA3.name

    def rules(self) -> frozenset[str]:
        return frozenset(FACTOR_RULES) | dense_names()

    def check(
        self, adapters: Sequence[PemAdapter], params: MethodParams, names: Sequence[str] | None = None
    ) -> None:
        label = (lambda i: names[i]) if names is not None else (lambda i: str(i))
        seen: dict[str, tuple[int, Ia3Module]] = {}
        for i, adapter in enumerate(adapters):
            for path, m in adapter.modules.items():
                j, first = seen.setdefault(path, (i, m))
                if m.l.shape != first.l.shape or m.is_feedforward != first.is_feedforward:
                    raise IncompatibleAdapters(
                        f"module {path!r}: ia3_l shapes differ (input {label(j)}: {list(first.l.shape)}"
                        f"{' feedforward' if first.is_feedforward else ''}, input {label(i)}: "
                        f"{list(m.l.shape)}"
                        f"{' feedforward' if m.is_feedforward else ''})"
                    )

    def combine(
        self,
        path: str,
        entries: Sequence[Entry],
        params: MethodParams,
        device: torch.device,
        out_dtype: torch.dtype,
    ) -> tuple[Ia3Module, dict[str, Any]]:
        # A missing module is the identity (l = 1), i.e. a zero (l - 1): it simply has no entry.
        deltas = [
            finite_f32(e.module.l, device, f"input {e.index} module {path!r} ia3_l") - 1.0 for e in entries
        ]
        rule = FACTOR_RULES.get(params.method) or dense_rule(params.method)
        if rule is None:
            raise IncompatibleAdapters(f"method {params.method} has no (IA)3 rule")
        method = get_method(params.method)
        scored = method is not None and method.takes("core_criterion")  # calibration norms apply
        norms = self._norms(params, path, entries[0].module) if scored else None
        merged, report = rule(lambda: deltas, entries, params, path, norms)
        assert isinstance(merged, torch.Tensor)
        out = Ia3Module(
            l=(1.0 + merged).to("cpu", out_dtype), is_feedforward=entries[0].module.is_feedforward
        )
        return out, report

    @staticmethod
    def _norms(params: MethodParams, path: str, module: Ia3Module) -> torch.Tensor | None:
        """Per-entry calibration norms: l scales the input features of feed-forward modules and the
        output features of the others, so those are the activations each entry multiplies."""
        norms = module_norms(params.activation_norms, params.core_criterion, path)
        if norms is None:
            return None
        vector = norms.input if module.is_feedforward else norms.output
        if vector.numel() != module.l.numel():
            raise IncompatibleAdapters(
                f"module {path!r}: calibration norms have {vector.numel()} entries, "
                f"ia3_l has {module.l.numel()}"
            )
        return vector.reshape(module.l.shape)

    def plan(
        self, path: str, entries: Sequence[Entry], params: MethodParams, out_dtype: torch.dtype
    ) -> Ia3Module:
        first = entries[0].module
        l = torch.empty(first.l.shape, dtype=out_dtype, device="meta")  # noqa: E741
        return Ia3Module(l=l, is_feedforward=first.is_feedforward)

    def output_config(
        self, adapters: Sequence[PemAdapter], modules: Mapping[str, Any], params: MethodParams
    ) -> dict[str, Any]:
        config = dict(adapters[0].config)
        config["peft_type"] = "IA3"
        config["base_model_name_or_path"] = next((a.base_model for a in adapters if a.base_model), None)
        ff = [p for p, m in modules.items() if m.is_feedforward]
        exact = {"target_modules": list(modules), "feedforward_modules": ff}
        config.update(unify([a.config for a in adapters], exact))
        return config

    def inner(self, a: Ia3Module, b: Ia3Module, device: torch.device) -> float:
        da = a.l.to(device, torch.float32) - 1.0
        db = b.l.to(device, torch.float32) - 1.0
        return float((da * db).sum())

    def merge_tensor(
        self, module: Ia3Module, role: str, tensor: torch.Tensor, fan_in_fan_out: bool
    ) -> torch.Tensor:
        l = module.l.float()  # noqa: E741
        if role == "bias":
            # PEFT scales the bias of output-scaling (non-feedforward) modules only.
            return (
                tensor
                if module.is_feedforward
                else (tensor.float() * l.reshape(tensor.shape)).to(tensor.dtype)
            )
        scaling = l.T if fan_in_fan_out else l
        fits = all(s in (1, t) for s, t in zip(scaling.shape, tensor.shape, strict=False))
        if tensor.dim() != 2 or not fits or scaling.numel() not in tensor.shape:
            raise IncompatibleAdapters(f"ia3_l {list(l.shape)} does not fit base weight {list(tensor.shape)}")
        return (tensor.float() * scaling).to(tensor.dtype)


register_composer(Ia3Composer())
