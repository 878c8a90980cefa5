"""What identifies a base model folder without trusting its path: its config fingerprint and weights digest.

An adapter's `base_model_name_or_path` is a string PEFT wrote at training time, often a path
(`./my-base`, `my-base`) that means something only on the machine that trained it. The machine that
registers the adapter (the CLI, in local or remote mode, or `registry.client`) looks at the folder that
string names *on its own disk*, and sends what it found: the fingerprint of config.json and the sha256
of model.safetensors. The registry matches those against registered bases; the path string itself never
becomes an identity. Both modes compute the evidence here, with the same rule, from the same working
directory, so they reach the same verdict for the same folder.

Standard library only: `registry.client` imports this.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
MAX_CONFIG_BYTES = 1024 * 1024
# Written by transformers at save time or describing the stored dtype, not the model: a copy saved
# again (or in bf16) is the same base for the purpose of which adapters fit it.
VOLATILE = {"_name_or_path", "transformers_version", "_commit_hash", "torch_dtype", "dtype"}


def config_fingerprint(config: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of config.json without its volatile keys."""
    kept = {k: v for k, v in config.items() if k not in VOLATILE}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(4 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class BaseEvidence:
    """What the caller saw in the folder its adapter config names (any field may be missing)."""

    config_sha256: str | None = None
    weights_sha256: str | None = None
    architecture: str | None = None
    config: dict[str, Any] | None = None  # kept for registering the base from this folder

    @property
    def empty(self) -> bool:
        return self.config_sha256 is None and self.weights_sha256 is None


def read_config(folder: Path) -> dict[str, Any] | None:
    path = folder / CONFIG_FILE
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def folder_evidence(folder: Path, *, weights: bool = True) -> BaseEvidence:
    """The evidence of a saved HF model folder; `weights=False` skips hashing model.safetensors."""
    config = read_config(folder)
    archs = (config or {}).get("architectures") or [None]
    digest = None
    if weights and (folder / WEIGHTS_FILE).is_file():
        digest = _sha256_file(folder / WEIGHTS_FILE)
    return BaseEvidence(
        config_sha256=config_fingerprint(config) if config is not None else None,
        weights_sha256=digest,
        architecture=archs[0] if isinstance(archs[0], str) else None,
        config=config,
    )


def local_folder(label: str | None, cwd: Path | None = None) -> Path | None:
    """The folder `label` names on this machine, as PEFT would open it (relative to the working
    directory, `~` expanded), or None when it names none (a hub id, a URI, a missing path)."""
    if not label or "://" in label or "\x00" in label:
        return None
    path = Path(os.path.expanduser(label))
    if not path.is_absolute():
        path = (cwd or Path.cwd()) / path
    try:
        return path.resolve() if path.is_dir() else None
    except OSError:
        return None


def evidence_for(label: str | None, cwd: Path | None = None, *, weights: bool = True) -> BaseEvidence | None:
    """Evidence for an adapter config's `base_model_name_or_path`, when it names a folder here.
    `weights=False` (the user named the base with --base-model: the evidence only checks it) skips
    hashing a possibly multi-GB model.safetensors."""
    folder = local_folder(label, cwd)
    return folder_evidence(folder, weights=weights) if folder is not None else None
