"""Read an adapter folder as users hand it to us, validate it, and describe what will be stored.

Validation streams: the safetensors header gives every shape (the checks of the PEM kind run on
shape-only tensors), then each module's tensors are read one at a time for the NaN/Inf check and
dropped, so registering a 400 MB adapter holds one module in memory, never the file. Digests a caller
computed while writing the files (an HTTP upload) are taken as they are instead of re-reading them.

Only safetensors is trusted. A legacy `adapter_model.bin` is read with `torch.load(weights_only=True)`
(which refuses arbitrary pickled objects) and converted; the converted bytes are what gets stored and
digested.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from .errors import AdapterFormatError
from .hashing import sha256_file
from .model_card import CARD_FILE
from .pem import PemAdapter
from .pem.base import check_all_finite
from .pem.lazy import LazyAdapter

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
LEGACY_WEIGHTS_FILE = "adapter_model.bin"


@dataclass
class FileEntry:
    path: Path
    sha256: str
    size: int


@dataclass
class IngestedAdapter:
    adapter: PemAdapter
    metadata: dict[str, Any]
    files: dict[str, FileEntry] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        """The version digest: sha256 of adapter_model.safetensors bytes."""
        return self.files[WEIGHTS_FILE].sha256

    @property
    def size_bytes(self) -> int:
        return self.files[WEIGHTS_FILE].size


def _convert_bin(src: Path, workdir: Path) -> Path:
    try:
        state = torch.load(src / LEGACY_WEIGHTS_FILE, map_location="cpu", weights_only=True)
    except Exception as exc:  # weights_only raises UnpicklingError for anything but plain tensors
        raise AdapterFormatError(
            f"{LEGACY_WEIGHTS_FILE}: refused: not a plain tensor state dict ({type(exc).__name__}); "
            "convert it to safetensors"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise AdapterFormatError(f"{LEGACY_WEIGHTS_FILE}: expected a dict of tensors")
    out = workdir / "converted"
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / CONFIG_FILE, out / CONFIG_FILE)
    save_file(
        {k: v.contiguous() for k, v in state.items()}, str(out / WEIGHTS_FILE), metadata={"format": "pt"}
    )
    return out


def validate_streaming(folder: Path) -> tuple[PemAdapter, dict[str, Any]]:
    """The checks of `read_adapter` (config, tensor kinds, the PEM kind's parse, NaN/Inf), one module
    in memory at a time. Returns the shape-only adapter and its metadata."""
    lazy = LazyAdapter(folder)
    try:
        for path in lazy.skeleton.modules:
            lazy.module(path)  # read, parsed and checked finite; dropped at the next iteration
        in_modules = {k for keys in lazy.keys.values() for k in keys}
        for key in sorted(set(lazy.file.tensors) - in_modules):  # modules_to_save copies
            check_all_finite({key: lazy.file.read(key)})
        metadata = lazy.skeleton.metadata()
        metadata["num_parameters"] = sum(math.prod(t.shape) for t in lazy.file.tensors.values())
        return lazy.skeleton, metadata
    finally:
        lazy.close()


def ingest_folder(src: Path, workdir: Path, known_digests: dict[str, str] | None = None) -> IngestedAdapter:
    """Validate `src` and return what to store. `workdir` holds any converted files; `known_digests`
    (file name -> sha256) were computed while the files were written (an upload)."""
    src = Path(src)
    if not src.is_dir():
        raise AdapterFormatError(f"{src}: not a directory (expected a PEFT adapter folder)")
    if not (src / CONFIG_FILE).is_file():
        raise AdapterFormatError(f"{src}: missing {CONFIG_FILE}")
    card = src / CARD_FILE
    known = dict(known_digests or {})
    if not (src / WEIGHTS_FILE).is_file() and (src / LEGACY_WEIGHTS_FILE).is_file():
        src = _convert_bin(src, workdir)
        known = {}  # the converted bytes are new
    adapter, metadata = validate_streaming(src)
    names = [CONFIG_FILE, WEIGHTS_FILE, *([CARD_FILE] if card.is_file() else [])]
    files = {}
    for name in names:
        path = card if name == CARD_FILE else src / name
        files[name] = FileEntry(path, known.get(name) or sha256_file(path), path.stat().st_size)
    return IngestedAdapter(adapter=adapter, metadata=metadata, files=files)
