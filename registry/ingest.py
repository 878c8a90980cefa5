"""Read an adapter folder as users hand it to us, validate it, and describe what will be stored.

Only safetensors is trusted. A legacy `adapter_model.bin` is read with `torch.load(weights_only=True)`
(which refuses arbitrary pickled objects) and converted; the converted bytes are what gets stored and
digested.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from .errors import AdapterFormatError
from .hashing import sha256_file
from .model_card import CARD_FILE
from .pem import PemAdapter, read_adapter

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


def ingest_folder(src: Path, workdir: Path) -> IngestedAdapter:
    """Validate `src` and return what to store. `workdir` holds any converted files."""
    src = Path(src)
    if not src.is_dir():
        raise AdapterFormatError(f"{src}: not a directory (expected a PEFT adapter folder)")
    if not (src / CONFIG_FILE).is_file():
        raise AdapterFormatError(f"{src}: missing {CONFIG_FILE}")
    card = src / CARD_FILE
    if not (src / WEIGHTS_FILE).is_file() and (src / LEGACY_WEIGHTS_FILE).is_file():
        src = _convert_bin(src, workdir)
    adapter = read_adapter(src)
    files = {
        name: FileEntry(src / name, sha256_file(src / name), (src / name).stat().st_size)
        for name in (CONFIG_FILE, WEIGHTS_FILE)
    }
    if card.is_file():
        files[CARD_FILE] = FileEntry(card, sha256_file(card), card.stat().st_size)
    return IngestedAdapter(adapter=adapter, metadata=adapter.metadata(), files=files)
