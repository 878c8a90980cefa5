"""Parameter-efficient modules: types, validation and PEFT folder I/O.

Public API:
    read_adapter(path: str | os.PathLike) -> PemAdapter
    write_adapter(adapter: PemAdapter, folder: str | os.PathLike) -> pathlib.Path
    PemAdapter(pem_type, config, modules, dtype, extra_tensors)
        .base_model -> str | None; .metadata() -> dict (JSON-serialisable); .to_tensors() -> dict
    LoraModule(A, B, alpha, use_rslora) (.r, .scale), Ia3Module(l, is_feedforward)
    KINDS: {pem_type: PemKind}; get_kind(pem_type) -> PemKind
"""

from registry.pem import ia3, lora  # noqa: F401 - importing registers the kinds
from registry.pem.base import KINDS, PemAdapter, PemKind, get_kind
from registry.pem.ia3 import Ia3Module
from registry.pem.io import read_adapter, torch_dtype, write_adapter
from registry.pem.lora import LoraModule

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
