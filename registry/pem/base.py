"""The PEM interface: one `PemKind` per method (LoRA, (IA)3, ...) and the `PemAdapter` value.

Adding a type (LoHa, VeRA) = its declaration in registry/pem/types.py, a module here that subclasses
`PemKind` and calls `register_kind`, and its composer (registry/compose/); nothing else branches on the
type (tests/test_pem_types.py). Tensors are kept in their storage dtype; arithmetic happens in
`registry.compose` in float32.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import regex
import torch

from registry.errors import AdapterFormatError
from registry.pem.types import PemType

# PEFT prefixes every saved key with the PeftModel's attribute path to the wrapped model.
KEY_PREFIX = "base_model.model."


class PemKind:
    """How one PEM method is read from / written to PEFT tensors and described in metadata."""

    declared: ClassVar[PemType]  # its name and facts (registry/pem/types.py)

    @property
    def pem_type(self) -> str:
        return self.declared.name

    @property
    def peft_type(self) -> str:
        return self.declared.peft_type

    def check_config(self, config: Mapping[str, Any]) -> None:
        """Field types of adapter_config.json (registry.pem.config_check); before any tensor is read."""
        raise NotImplementedError

    def parse(self, config: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        """Validate tensors against the config; return {module path: per-type module}."""
        raise NotImplementedError

    def to_tensors(self, modules: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """PEFT safetensors keys -> tensors (inverse of `parse`)."""
        raise NotImplementedError

    def metadata(self, config: Mapping[str, Any], modules: Mapping[str, Any]) -> dict[str, Any]:
        """Type-specific metadata fields: r, lora_alpha, use_rslora, module_shapes."""
        raise NotImplementedError

    def base_mismatch(
        self, shapes: Mapping[str, list[int]], in_features: int, out_features: int
    ) -> tuple[str, str] | None:
        """(what the module has, what the base wants) when its recorded tensor shapes (`module_shapes`
        of the metadata) do not fit a base linear layer of these dims; None when they fit."""
        raise NotImplementedError


KINDS: dict[str, PemKind] = {}


def register_kind(kind: PemKind) -> PemKind:
    """Add a type's reader/writer; a second one for a type is refused."""
    if kind.pem_type in KINDS:
        raise ValueError(f"pem_type {kind.pem_type!r} already has a PemKind")
    KINDS[kind.pem_type] = kind
    return kind


def _builtin_kinds() -> dict[str, PemKind]:
    # The built-in kinds register on import; loaded here so that no caller has to remember to.
    from registry.pem import ia3, lora  # noqa: F401

    return KINDS


def kind_for_peft_type(peft_type: object) -> PemKind:
    for kind in _builtin_kinds().values():
        if kind.peft_type == peft_type:
            return kind
    supported = ", ".join(sorted(k.peft_type for k in KINDS.values()))
    raise AdapterFormatError(
        f"adapter_config.json: unsupported peft_type {peft_type!r} (supported: {supported})"
    )


def get_kind(pem_type: str) -> PemKind:
    try:
        return _builtin_kinds()[pem_type]
    except KeyError:
        raise AdapterFormatError(f"unknown pem_type {pem_type!r}") from None


@dataclass
class PemAdapter:
    """One adapter in memory: the raw PEFT config plus per-module tensors keyed by module path.

    Module paths are relative to the base model (`model.layers.0.self_attn.q_proj`), so they are also
    the base model's state-dict prefixes (`<path>.weight`).
    """

    pem_type: str
    config: dict[str, Any]
    modules: dict[str, Any]
    dtype: str
    # Tensors that are not PEM factors (modules_to_save copies); carried, never composed.
    extra_tensors: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def kind(self) -> PemKind:
        return get_kind(self.pem_type)

    @property
    def base_model(self) -> str | None:
        return self.config.get("base_model_name_or_path")

    def to_tensors(self) -> dict[str, torch.Tensor]:
        tensors = self.kind.to_tensors(self.modules)
        tensors.update(self.extra_tensors)
        return tensors

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "pem_type": self.pem_type,
            "target_modules": target_module_names(self.config),
            "dtype": self.dtype,
            "num_parameters": sum(t.numel() for t in self.to_tensors().values()),
            "base_model_name_or_path": self.base_model,
        }
        meta.update(self.kind.metadata(self.config, self.modules))
        return meta


def target_module_names(config: Mapping[str, Any]) -> list[str]:
    targets = config.get("target_modules")
    if targets is None:
        return []
    if isinstance(targets, str):
        return [targets]
    return sorted(targets)


def matches_target(path: str, targets: object) -> bool:
    """PEFT's rule: a list entry matches the path or its dotted suffix; a string is a full regex."""
    if targets is None:
        return False
    if isinstance(targets, str):
        return targets == "all-linear" or _bounded_match(targets, path, "target_modules", full=True)
    if not isinstance(targets, list | tuple | set):
        return False  # config_check refuses any other type before tensors are read
    return any(path == t or path.endswith("." + t) for t in targets)


REGEX_SECONDS = 0.5


def _bounded_match(pattern: str, path: str, field: str, *, full: bool) -> bool:
    """PEFT's `re` semantics, evaluated by `regex` (same syntax for these patterns) under a time bound:
    the pattern and the module paths both come from the uploaded files, so `(a+)+b` against a long run
    of `a`s must not hold a server thread for minutes."""
    try:
        found = (regex.fullmatch if full else regex.match)(pattern, path, timeout=REGEX_SECONDS)
    except TimeoutError:
        raise AdapterFormatError(
            f"adapter_config.json: {field}: pattern {pattern[:60]!r} takes too long to match {path[:60]!r}",
            field=field,
        ) from None
    return found is not None


def pattern_value(patterns: Mapping[str, Any] | None, path: str, default: Any) -> Any:
    """rank_pattern / alpha_pattern lookup, same anchoring as peft.utils.other.get_pattern_key."""
    for key, value in (patterns or {}).items():
        if _bounded_match(rf"(.*\.)?({key})$", path, "rank_pattern/alpha_pattern", full=False):
            return value
    return default


def module_path(key: str, suffix: str) -> str:
    """`base_model.model.<path><suffix>` -> `<path>`; the caller checked the suffix."""
    if not key.startswith(KEY_PREFIX):
        raise AdapterFormatError(f"tensor {key!r}: key does not start with {KEY_PREFIX!r}")
    return key[len(KEY_PREFIX) : len(key) - len(suffix)]


# Tensors already proven finite by read_adapter, so compose does not read them a second time.
# Identity-based and weak: a tensor replaced in memory is a new object and gets checked again.
_VERIFIED_FINITE: weakref.WeakValueDictionary[int, torch.Tensor] = weakref.WeakValueDictionary()


def all_finite(tensor: torch.Tensor) -> bool:
    """NaN/Inf propagate through a sum, so a finite sum proves every entry finite with one read and
    no temporary; only a non-finite sum (possibly a half-precision overflow) needs the exact check."""
    if not tensor.is_floating_point() or _VERIFIED_FINITE.get(id(tensor)) is tensor:
        return True
    return bool(torch.isfinite(tensor.sum())) or bool(torch.isfinite(tensor).all())


def check_all_finite(tensors: Mapping[str, torch.Tensor]) -> None:
    """Raise naming the first tensor with NaN/Inf. One batched norm call for the whole file (per-tensor
    calls cost more in dispatch than in arithmetic for LoRA-sized tensors); a non-finite norm may be
    an overflow, so only those tensors get the exact elementwise check."""
    floats = [(k, t) for k, t in tensors.items() if t.is_floating_point()]
    if not floats:
        return
    norms = torch.stack([n.float() for n in torch._foreach_norm([t for _, t in floats])])
    if not bool(torch.isfinite(norms).all()):
        for (key, tensor), norm in zip(floats, norms.tolist(), strict=True):
            if not math.isfinite(norm) and not bool(torch.isfinite(tensor).all()):
                raise AdapterFormatError(f"tensor {key!r} contains NaN or Inf")
    _VERIFIED_FINITE.update((id(t), t) for _, t in floats)


# PEM factors are floating point; an integer or bool tensor is not a trained adapter (and would be
# composed with integer arithmetic).
FACTOR_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_tensor_kinds(tensors: Mapping[str, torch.Tensor]) -> None:
    """Every tensor is floating point of one of FACTOR_DTYPES and has no zero-width dimension."""
    if not tensors:
        raise AdapterFormatError("adapter_model.safetensors: holds no tensors")
    for key, tensor in tensors.items():
        if tensor.dtype not in FACTOR_DTYPES:
            allowed = ", ".join(dtype_name(d) for d in FACTOR_DTYPES)
            raise AdapterFormatError(
                f"tensor {key!r}: dtype {dtype_name(tensor.dtype)} is not supported (expected {allowed})"
            )
        if tensor.dim() == 0 or 0 in tensor.shape:
            raise AdapterFormatError(f"tensor {key!r}: shape {list(tensor.shape)} has an empty dimension")


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def modules_to_save_keys(config: Mapping[str, Any], key: str) -> bool:
    """True for a tensor that belongs to a `modules_to_save` full copy (not a PEM factor)."""
    names = config.get("modules_to_save") or []
    path = key.removeprefix(KEY_PREFIX)
    return any(path.startswith(n + ".") or f".{n}." in path for n in names)
