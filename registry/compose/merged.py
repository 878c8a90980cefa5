"""Merged-model output: base weights + composed delta (PEFT merge_and_unload), shard by shard.

Only one input shard is in memory at a time; output shards keep the base's names (so an existing
model.safetensors.index.json stays valid) and every written file gets its sha256.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file

from registry.compose.base import get_composer
from registry.errors import IncompatibleAdapters, InvalidInput
from registry.hashing import sha256_file
from registry.pem import PemAdapter

# Unmerged weights in other formats would shadow or contradict the merged shards.
SKIPPED_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack")
SKIPPED_NAMES = ("pytorch_model.bin.index.json",)


def _locate(shards: list[Path], adapter: PemAdapter) -> None:
    """Every adapter module must have a `<path>.weight` in some shard (header-only read)."""
    keys: set[str] = set()
    for shard in shards:
        with safe_open(str(shard), framework="pt") as fh:
            keys.update(fh.keys())
    for path in adapter.modules:
        if path + ".weight" not in keys:
            raise IncompatibleAdapters(f"module {path!r}: base model has no tensor {path + '.weight'!r}")


def merge_into_base(
    base_folder: str | os.PathLike[str], adapter: PemAdapter, out_folder: str | os.PathLike[str]
) -> dict[str, str]:
    """Write base + adapter into `out_folder`; return {file name: sha256} of every file written."""
    base, out = Path(base_folder), Path(out_folder)
    shards = sorted(base.glob("*.safetensors"))
    if not shards:
        raise InvalidInput(f"base model folder {base} has no .safetensors weights", field="base_model")
    _locate(shards, adapter)
    composer = get_composer(adapter.pem_type)
    fan_in_fan_out = bool(adapter.config.get("fan_in_fan_out", False))
    out.mkdir(parents=True, exist_ok=True)
    digests: dict[str, str] = {}
    for item in sorted(base.iterdir()):
        if not item.is_file() or item.suffix == ".safetensors":
            continue
        if item.suffix in SKIPPED_SUFFIXES or item.name in SKIPPED_NAMES:
            continue
        shutil.copyfile(item, out / item.name)
        digests[item.name] = sha256_file(out / item.name)
    for shard in shards:
        tensors = {}
        with safe_open(str(shard), framework="pt") as fh:
            metadata = fh.metadata() or {"format": "pt"}
            for key in fh.keys():  # noqa: SIM118 - safe_open is not a dict
                tensor = fh.get_tensor(key)
                path, _, role = key.rpartition(".")
                module = adapter.modules.get(path)
                if module is not None and role in ("weight", "bias"):
                    try:
                        tensor = composer.merge_tensor(module, role, tensor, fan_in_fan_out)
                    except IncompatibleAdapters as exc:
                        raise IncompatibleAdapters(f"module {path!r}: {exc}") from None
                tensors[key] = tensor.contiguous()
        save_file(tensors, out / shard.name, metadata=metadata)
        digests[shard.name] = sha256_file(out / shard.name)
        del tensors
    (out / "merge_manifest.json").write_text(json.dumps({"files": digests}, indent=2, sort_keys=True) + "\n")
    return digests
