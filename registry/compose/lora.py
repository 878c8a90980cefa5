"""LoRA composition: a rule per method of the table, on factors (factor space) or on one input's dense
delta at a time (dense methods, compose/dense.py), recompressed by the exact truncated SVD."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import torch

from registry.compose.base import (
    Composer,
    Entry,
    MethodParams,
    finite_f32,
    register_composer,
)
from registry.compose.core_merge import module_norms
from registry.compose.dense import dense_names, dense_rule
from registry.compose.iso_c import iso_c
from registry.compose.knots import knots
from registry.compose.lowrank import dense_truncated, factors_truncated, pad
from registry.compose.methods import get_method
from registry.compose.targets import unify
from registry.compose.tsv import check_fits, tsv
from registry.errors import IncompatibleAdapters, InvalidInput
from registry.pem import LoraModule, PemAdapter
from registry.pem.types import LORA

PROBE = 64  # entries compared before a full `torch.equal` in `_same`


def _same(a: LoraModule, b: LoraModule) -> bool:
    return (
        a.scale == b.scale
        and a.A.shape == b.A.shape
        and a.B.shape == b.B.shape
        # a few leading entries first: distinct inputs differ there, so the n^2 pairs of a module
        # cost n^2 tiny comparisons instead of n^2 full ones (2 ms each for an 8B MLP factor)
        and torch.equal(a.A[0, :PROBE], b.A[0, :PROBE])  # a view: no copy
        and torch.equal(a.A, b.A)
        and torch.equal(a.B, b.B)
    )


def grouped_coefficients(entries: Sequence[Entry]) -> list[float]:
    """Weights with identical inputs pooled onto their first occurrence (the others get 0).

    Why: `x - x` must be an exact zero delta; pooling gives coefficient 0 exactly, whereas summing
    s B A - s B A through a matmul leaves rounding noise.
    """
    coeffs = [e.weight for e in entries]
    for i in range(len(entries)):
        for j in range(i):
            if _same(entries[i].module, entries[j].module):
                coeffs[j] += coeffs[i]
                coeffs[i] = 0.0
                break
    return coeffs


Factors = list[torch.Tensor]
FactorRule = Callable[
    [Sequence[Entry], Factors, Factors, list[float], MethodParams],
    tuple[torch.Tensor, torch.Tensor, dict[str, Any]],
]


def _linear(
    entries: Sequence[Entry], a_list: Factors, b_list: Factors, scales: list[float], params: MethodParams
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    # in-place accumulation: one output allocation per factor instead of one per term
    a = abs(entries[0].weight) * a_list[0]
    b = (entries[0].weight * scales[0]) * b_list[0]
    for e, s, ai, bi in zip(entries[1:], scales[1:], a_list[1:], b_list[1:], strict=True):
        a.add_(ai, alpha=abs(e.weight))
        b.add_(bi, alpha=e.weight * s)
    return a, b, {}


def _delta_cat(
    entries: Sequence[Entry], a_list: Factors, b_list: Factors, scales: list[float], params: MethodParams
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    coeffs = grouped_coefficients(entries)
    b = torch.cat(b_list, dim=1)
    a = torch.cat([c * s * ai for c, s, ai in zip(coeffs, scales, a_list, strict=True)], dim=0)
    return a, b, {}


def _delta_svd(
    entries: Sequence[Entry], a_list: Factors, b_list: Factors, scales: list[float], params: MethodParams
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    coeffs = grouped_coefficients(entries)
    bs = torch.cat([c * s * bi for c, s, bi in zip(coeffs, scales, b_list, strict=True)], dim=1)
    b, a, energy = factors_truncated(bs, torch.cat(a_list, dim=0), params.required_rank())
    return a, b, {"retained_energy": energy}


def _weighted_b(entries: Sequence[Entry], b_list: Factors, scales: list[float]) -> Factors:
    """w_i s_i B_i: each input's T_i = (w_i s_i B_i) A_i with the weight and scale on B."""
    return [e.weight * s * bi for e, s, bi in zip(entries, scales, b_list, strict=True)]


def _knots(
    entries: Sequence[Entry], a_list: Factors, b_list: Factors, scales: list[float], params: MethodParams
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    b, a, aligned = knots(
        _weighted_b(entries, b_list, scales),
        a_list,
        merge=params.value("merge"),
        density=params.declared("density"),
        majority_sign=params.majority_sign,
        rank=params.rank,
    )
    return a, b, {"aligned_rank": aligned}


def _tsv(
    entries: Sequence[Entry], a_list: Factors, b_list: Factors, scales: list[float], params: MethodParams
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    weighted = _weighted_b(entries, b_list, scales)
    b, a = tsv(weighted, a_list, per_input_rank=params.value("per_input_rank"), scale=params.value("scale"))
    return a, b, {}


def _iso_c(
    entries: Sequence[Entry], a_list: Factors, b_list: Factors, scales: list[float], params: MethodParams
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    coeffs = grouped_coefficients(entries)  # x - x is an exact zero, as for delta_svd
    bs = torch.cat([c * s * bi for c, s, bi in zip(coeffs, scales, b_list, strict=True)], dim=1)
    rank = params.rank if params.rank is not None else sum(a.shape[0] for a in a_list)
    b, a, s_bar = iso_c(bs, torch.cat(a_list, dim=0), rank=rank, scale=params.value("scale"))
    return a, b, {"s_bar": s_bar}


# The factor-space methods of the table (compose/methods.py); the dense ones are compose/dense.py's.
FACTOR_RULES: dict[str, FactorRule] = {
    "linear": _linear,
    "delta_cat": _delta_cat,
    "delta_svd": _delta_svd,
    "knots": _knots,
    "tsv": _tsv,
    "iso_c": _iso_c,
}


def _tsv_fits(path: str, modules: Sequence[LoraModule], params: MethodParams) -> None:
    rows, columns = int(modules[0].B.shape[0]), int(modules[0].A.shape[1])
    check_fits(path, [m.r for m in modules], rows, columns, params.value("per_input_rank"))


# Per-module checks a factor method needs before any arithmetic (shapes only: the dry run runs them).
FACTOR_CHECKS: dict[str, Callable[[str, Sequence[LoraModule], MethodParams], None]] = {"tsv": _tsv_fits}


class LoraComposer(Composer):
    pem_type = LORA.name
    cross_terms = True

    def rules(self) -> frozenset[str]:
        return frozenset(FACTOR_RULES) | dense_names()

    def check(
        self, adapters: Sequence[PemAdapter], params: MethodParams, names: Sequence[str] | None = None
    ) -> None:
        method = get_method(params.method)
        equal_ranks = method is not None and method.output_rank == "input"  # linear: factors add
        label = (lambda i: names[i]) if names is not None else (lambda i: str(i))
        seen: dict[str, tuple[int, LoraModule]] = {}
        for i, adapter in enumerate(adapters):
            for path, m in adapter.modules.items():
                d, k = int(m.B.shape[0]), int(m.A.shape[1])
                if path not in seen:
                    seen[path] = (i, m)
                    continue
                j, first = seen[path]
                if (d, k) != (first.B.shape[0], first.A.shape[1]):
                    raise IncompatibleAdapters(
                        f"module {path!r}: delta shapes differ (input {label(j)}: "
                        f"{first.B.shape[0]}x{first.A.shape[1]}, input {label(i)}: {d}x{k})"
                    )
                if equal_ranks and m.r != first.r:
                    raise IncompatibleAdapters(
                        f"module {path!r}: ranks differ (input {label(j)}: r={first.r}, input {label(i)}: "
                        f"r={m.r}); linear needs equal ranks, use delta_svd (or delta_cat)"
                    )
        if (module_check := FACTOR_CHECKS.get(params.method)) is not None:
            for path in sorted(seen):
                module_check(path, [a.modules[path] for a in adapters if path in a.modules], params)

    def check_rank(self, adapters: Sequence[PemAdapter], rank: int, names: Sequence[str]) -> None:
        for name, adapter in zip(names, adapters, strict=True):
            for path, module in sorted(adapter.modules.items()):
                d, k = int(module.B.shape[0]), int(module.A.shape[1])
                if rank > min(d, k):
                    raise InvalidInput(
                        f"rank: {rank} exceeds min(d, k) = {min(d, k)} of module {path} ({d} x {k}) "
                        f"of input {name}",
                        field="rank",
                    )

    def resolve(self, adapters: Sequence[PemAdapter], params: MethodParams) -> MethodParams:
        method = get_method(params.method)
        # the "rank" rule's default is one figure for every module; other rules default per module
        if params.rank is not None or method is None or method.output_rank != "rank":
            return params
        return replace(params, rank=max(m.r for a in adapters for m in a.modules.values()))

    def combine(
        self,
        path: str,
        entries: Sequence[Entry],
        params: MethodParams,
        device: torch.device,
        out_dtype: torch.dtype,
    ) -> tuple[LoraModule, dict[str, Any]]:
        a_list = [finite_f32(e.module.A, device, f"input {e.index} module {path!r} lora_A") for e in entries]
        b_list = [finite_f32(e.module.B, device, f"input {e.index} module {path!r} lora_B") for e in entries]
        scales = [e.module.scale for e in entries]
        if params.method in FACTOR_RULES:
            a, b, report = FACTOR_RULES[params.method](entries, a_list, b_list, scales, params)
            method = get_method(params.method)
            assert method is not None  # check_params ran
            # the planned rank (plan()): methods whose rank depends on the data are zero-padded to it
            b, a = pad(b, a, method.lora_rank([e.module.r for e in entries], params.rank, params.extra))
        elif (rule := dense_rule(params.method)) is not None:
            method = get_method(params.method)
            scored = method is not None and method.takes("core_criterion")  # calibration norms apply
            norms = module_norms(params.activation_norms, params.core_criterion, path) if scored else None
            merged, report = rule(
                # one input's dense delta at a time, formed again on each pass
                lambda: ((bi @ ai).mul_(s) for s, bi, ai in zip(scales, b_list, a_list, strict=True)),
                entries,
                params,
                path,
                None if norms is None else norms.input[None, :],  # score[o, c] uses ||X[:, c]||
            )
            b, a, report["retained_energy"] = dense_truncated(merged, params.required_rank())
        else:
            raise IncompatibleAdapters(f"method {params.method} has no LoRA rule")
        assert isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)
        module = LoraModule(A=a.to("cpu", out_dtype), B=b.to("cpu", out_dtype), alpha=float(a.shape[0]))
        report["rank"] = int(a.shape[0])
        return module, report

    def plan(
        self, path: str, entries: Sequence[Entry], params: MethodParams, out_dtype: torch.dtype
    ) -> LoraModule:
        first = entries[0].module
        method = get_method(params.method)
        assert method is not None  # check_params ran
        # truncated outputs are zero-padded to the requested rank (lowrank._pad)
        rank = method.lora_rank([e.module.r for e in entries], params.rank, params.extra)
        a = torch.empty(rank, first.A.shape[1], dtype=out_dtype, device="meta")
        b = torch.empty(first.B.shape[0], rank, dtype=out_dtype, device="meta")
        return LoraModule(A=a, B=b, alpha=float(rank))

    def output_config(
        self, adapters: Sequence[PemAdapter], modules: Mapping[str, Any], params: MethodParams
    ) -> dict[str, Any]:
        ranks = Counter(m.r for m in modules.values())
        # The commonest rank is `r`; the rest go to rank_pattern with exact module paths.
        r = max(ranks, key=lambda k: (ranks[k], k))
        pattern = {p: m.r for p, m in sorted(modules.items()) if m.r != r}
        config = dict(adapters[0].config)
        config.update(
            peft_type="LORA",
            r=r,
            lora_alpha=r,  # scale alpha / r == 1: the weights' scales are folded into the factors
            rank_pattern=pattern,
            alpha_pattern=dict(pattern),
            use_rslora=False,
            use_dora=False,
            base_model_name_or_path=next((a.base_model for a in adapters if a.base_model), None),
        )
        config.update(unify([a.config for a in adapters], {"target_modules": list(modules)}))
        return config

    def inner(self, a: LoraModule, b: LoraModule, device: torch.device) -> float:
        a_a, a_b = a.A.to(device, torch.float32), a.B.to(device, torch.float32)
        b_a, b_b = b.A.to(device, torch.float32), b.B.to(device, torch.float32)
        # <sa Ba Aa, sb Bb Ab>_F = sa sb sum((Ba^T Bb) * (Aa Ab^T)): r x r work, no d x k matrix.
        return a.scale * b.scale * float(((a_b.T @ b_b) * (a_a @ b_a.T)).sum())

    def merge_tensor(
        self, module: LoraModule, role: str, tensor: torch.Tensor, fan_in_fan_out: bool
    ) -> torch.Tensor:
        if role != "weight":
            return tensor
        delta = module.scale * (module.B.float() @ module.A.float())
        if fan_in_fan_out:  # Conv1D stores (in, out)
            delta = delta.T
        if delta.shape != tensor.shape:
            raise IncompatibleAdapters(
                f"delta {list(delta.shape)} does not fit base weight {list(tensor.shape)}"
            )
        return (tensor.float() + delta).to(tensor.dtype)


register_composer(LoraComposer())
