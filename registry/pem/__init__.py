"""Parameter-efficient modules: types, validation and PEFT folder I/O.

Public API:
    read_adapter(path: str | os.PathLike) -> PemAdapter
    write_adapter(adapter: PemAdapter, folder: str | os.PathLike) -> pathlib.Path
    PemAdapter(pem_type, config, modules, dtype, extra_tensors)
        .base_model -> str | None; .metadata() -> dict (JSON-serialisable); .to_tensors() -> dict
    LoraModule(A, B, alpha, use_rslora) (.r, .scale), Ia3Module(l, is_feedforward)
    KINDS: {pem_type: PemKind}; get_kind(pem_type) -> PemKind

The names load on first use (PEP 562): `registry.pem.types` (the declared types, no torch) is read by
the spec and the method table, which must not pay for torch through this package's import.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from registry.pem.base import KINDS, PemAdapter, PemKind, get_kind
    from registry.pem.ia3 import Ia3Module
    from registry.pem.io import read_adapter, torch_dtype, write_adapter
    from registry.pem.lora import LoraModule

_HOME = {
    "KINDS": "base",
    "PemAdapter": "base",
    "PemKind": "base",
    "get_kind": "base",
    "Ia3Module": "ia3",
    "LoraModule": "lora",
    "read_adapter": "io",
    "torch_dtype": "io",
    "write_adapter": "io",
}

__all__ = [
    "KINDS",
    "Ia3Module",
    "LoraModule",
    "PemAdapter",
    "PemKind",
    "get_kind",
    "read_adapter",
    "torch_dtype",
    "write_adapter",
]


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # later reads skip this hook
    return value
