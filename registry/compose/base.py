"""The per-PEM-type composition interface and the shared value types.

Each PEM type has one `Composer` (compose/lora.py, compose/ia3.py); the engine, interference report
and merged-model writer call only this interface, so a new type is one new module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from registry.compose.methods import method_names
from registry.errors import IncompatibleAdapters
from registry.pem import PemAdapter
from registry.pem.base import all_finite

METHODS = method_names()  # the built-in methods' names, in the table's order (compose/methods.py)


@dataclass(frozen=True)
class MethodParams:
    method: str
    rank: int | None = None  # delta_svd / pruning output rank (LoRA); None -> max input rank
    density: float | None = None  # pruning methods: kept fraction
    majority_sign: str = "total"  # ties / dare_ties sign election: 'total' | 'frequency'
    seed: int = 0  # DARE masks
    core_criterion: str = "magnitude"  # core_merge: 'magnitude' | 'importance'
    # core_merge 'importance': module path -> core_merge.ActivationNorms of the base on calibration data
    activation_norms: Mapping[str, Any] | None = field(default=None, compare=False, hash=False, repr=False)
    # the spec's `params:` (method-specific parameters other than the fields above), as given
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def value(self, name: str) -> Any:
        """A `params:` parameter as the method uses it: given, or its declared default."""
        from registry.compose.methods import get_method

        method = get_method(self.method)
        return method.resolved_params(self.extra)[name] if method is not None else self.extra[name]

    def declared(self, name: str) -> Any:
        """A top-level field (rank, density, ...) as the method uses it: given, or its declared default."""
        from registry.compose.methods import get_method

        value = getattr(self, name)
        if value is not None:
            return value
        method = get_method(self.method)
        param = method.param(name) if method is not None else None
        return None if param is None else param.default

    def required_density(self) -> float:
        """density of a pruning method; the spec validator guarantees one is given."""
        if self.density is None:
            raise ValueError(f"method {self.method} needs density")
        return self.density

    def required_rank(self) -> int:
        """Output rank of a LoRA method that truncates; the engine resolves a missing one."""
        if self.rank is None:
            raise ValueError(f"method {self.method} needs a resolved rank")
        return self.rank


@dataclass(frozen=True)
class Entry:
    """One input's contribution to one module: its position in the input list, weight and data."""

    index: int
    weight: float
    module: Any


class Composer:
    pem_type: ClassVar[str]
    # Its `linear` multiplies summed factors, so cross terms B_i A_j join the result; the interference
    # report then measures how far linear is from the exact weighted sum (compose/cross_terms.py).
    cross_terms: ClassVar[bool] = False

    def rules(self) -> frozenset[str]:
        """The methods this composer has a rule for (a table method without one is refused)."""
        raise NotImplementedError

    def check(
        self, adapters: Sequence[PemAdapter], params: MethodParams, names: Sequence[str] | None = None
    ) -> None:
        """Per-module compatibility (shapes, ranks under linear); raise IncompatibleAdapters naming the
        input (`names[i]`, else its position)."""
        raise NotImplementedError

    def check_rank(self, adapters: Sequence[PemAdapter], rank: int, names: Sequence[str]) -> None:
        """Refuse (InvalidInput, field `rank`) a spec's `rank` that some module cannot hold. The engine
        caps it (zero-padded factors); a spec asking for more is refused before a run (the dry run)."""

    def resolve(self, adapters: Sequence[PemAdapter], params: MethodParams) -> MethodParams:
        """The parameters a run uses, defaults that depend on the inputs filled in (LoRA: rank)."""
        return params

    def combine(
        self,
        path: str,
        entries: Sequence[Entry],
        params: MethodParams,
        device: torch.device,
        out_dtype: torch.dtype,
    ) -> tuple[Any, dict[str, Any]]:
        """Compose one module; return the output module (CPU, out_dtype) and its report."""
        raise NotImplementedError

    def plan(self, path: str, entries: Sequence[Entry], params: MethodParams, out_dtype: torch.dtype) -> Any:
        """The module `combine` will return, as shape-only ("meta") tensors: the streaming engine
        writes the output file's header before any arithmetic (compose/stream.py)."""
        raise NotImplementedError

    def output_config(
        self, adapters: Sequence[PemAdapter], modules: Mapping[str, Any], params: MethodParams
    ) -> dict[str, Any]:
        raise NotImplementedError

    def inner(self, a: Any, b: Any, device: torch.device) -> float:
        """Frobenius inner product of the two modules' deltas, from their factors."""
        raise NotImplementedError

    def merge_tensor(
        self, module: Any, role: str, tensor: torch.Tensor, fan_in_fan_out: bool
    ) -> torch.Tensor:
        """Apply the module to a base tensor (`role` is 'weight' or 'bias'), like PEFT's merge."""
        raise NotImplementedError


COMPOSERS: dict[str, Composer] = {}


def register_composer(composer: Composer) -> Composer:
    if composer.pem_type in COMPOSERS:
        raise ValueError(f"pem_type {composer.pem_type!r} already has a composer")
    COMPOSERS[composer.pem_type] = composer
    return composer


def get_composer(pem_type: str) -> Composer:
    # The built-in composers register on import; loaded here so that no caller has to remember to.
    from registry.compose import ia3, lora  # noqa: F401

    try:
        return COMPOSERS[pem_type]
    except KeyError:
        raise IncompatibleAdapters(f"pem_type {pem_type!r} has no composition support") from None


def finite_f32(tensor: torch.Tensor, device: torch.device, what: str) -> torch.Tensor:
    """Move to the compute device in float32 and refuse NaN/Inf (adapters may be built in memory)."""
    t = tensor.to(device=device, dtype=torch.float32)
    if not all_finite(t):
        raise IncompatibleAdapters(f"{what} contains NaN or Inf")
    return t
