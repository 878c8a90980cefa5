"""Read and write PEFT adapter folders (adapter_config.json + adapter_model.safetensors)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from registry.errors import AdapterFormatError
from registry.pem.base import (
    PemAdapter,
    check_all_finite,
    check_tensor_kinds,
    dtype_name,
    kind_for_peft_type,
    modules_to_save_keys,
)

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"


def read_adapter(path: str | os.PathLike[str]) -> PemAdapter:
    """Load and validate an adapter folder; every problem is an `AdapterFormatError` with one line."""
    folder = Path(path)
    weights_file = folder / WEIGHTS_NAME
    config = read_config(folder)
    kind = kind_for_peft_type(config.get("peft_type"))
    kind.check_config(config)
    if not weights_file.is_file():
        raise AdapterFormatError(f"{WEIGHTS_NAME} not found in {folder}")
    try:
        tensors = load_file(weights_file)
    except Exception as exc:  # safetensors raises its own SafetensorError / OSError on bad bytes
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AdapterFormatError(f"{WEIGHTS_NAME}: unreadable safetensors file ({first_line})") from None
    check_tensor_kinds(tensors)
    modules = kind.parse(config, tensors)
    check_all_finite(tensors)
    extras = {k: t for k, t in tensors.items() if modules_to_save_keys(config, k)}
    first = next(iter(tensors.values()))
    return PemAdapter(
        pem_type=kind.pem_type,
        config=config,
        modules=modules,
        dtype=dtype_name(first.dtype),
        extra_tensors=extras,
    )


def read_config(folder: Path) -> dict[str, Any]:
    """adapter_config.json as a dict; a missing or malformed file is an `AdapterFormatError`."""
    config_file = folder / CONFIG_NAME
    if not config_file.is_file():
        raise AdapterFormatError(f"{CONFIG_NAME} not found in {folder}")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, or an integer of 4300+ digits
        raise AdapterFormatError(f"{CONFIG_NAME}: not valid JSON ({exc})", field="config") from None
    except RecursionError:
        raise AdapterFormatError(f"{CONFIG_NAME}: nested too deeply", field="config") from None
    if not isinstance(config, dict):
        raise AdapterFormatError(f"{CONFIG_NAME}: expected a JSON object")
    return config


def write_adapter(adapter: PemAdapter, folder: str | os.PathLike[str]) -> Path:
    """Write a folder that `PeftModel.from_pretrained` loads without missing/unexpected keys."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_NAME).write_text(
        json.dumps(adapter.config, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    tensors = {k: t.detach().to("cpu").contiguous() for k, t in adapter.to_tensors().items()}
    save_file(tensors, out / WEIGHTS_NAME, metadata={"format": "pt"})
    return out


def torch_dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise AdapterFormatError(f"unknown dtype {name!r}")
    return dtype
