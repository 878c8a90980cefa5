"""Streaming transfers: an upload file that reports progress as httpx reads it, and a verified download
(temp file in the target folder, sha256 checked, then renamed into place)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from .errors import IntegrityError, InvalidInput

Progress = Callable[[str, int], Callable[[int], None]]  # (filename, total bytes) -> on_bytes(n)
CHUNK = 1024 * 1024


class ProgressFile:
    """A read-only file whose reads advance a progress callback; httpx streams multipart bodies by
    calling read() in chunks, so the upload is never held in memory."""

    def __init__(self, path: Path, on_bytes: Callable[[int], None] | None) -> None:
        self._file: IO[bytes] = path.open("rb")
        self._on_bytes = on_bytes
        self.name = path.name

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        if data and self._on_bytes:
            self._on_bytes(len(data))
        return data

    def fileno(self) -> int:  # lets httpx compute Content-Length from the file size
        return self._file.fileno()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def close(self) -> None:
        self._file.close()


def check_target(dest: Path, force: bool) -> None:
    """A download goes into an empty or new folder; a non-empty one only with force."""
    if dest.exists() and not dest.is_dir():
        raise InvalidInput(f"dest: {dest} exists and is not a folder", field="dest")
    if dest.is_dir() and any(dest.iterdir()) and not force:
        raise InvalidInput(f"dest: {dest} is not empty (use --force / force=True to overwrite)", field="dest")


def write_verified(
    chunks: Iterator[bytes], target: Path, sha256: str, on_bytes: Callable[[int], None] | None
) -> None:
    """Stream into a temp file beside `target`; rename only when the digest matches."""
    part = target.with_name(f".{target.name}.part")
    digest = hashlib.sha256()
    try:
        with part.open("wb") as out:
            for chunk in chunks:
                out.write(chunk)
                digest.update(chunk)
                if on_bytes:
                    on_bytes(len(chunk))
        if digest.hexdigest() != sha256:
            raise IntegrityError(
                f"{target.name}: downloaded bytes have sha256 {digest.hexdigest()[:12]}…, "
                f"the catalog records {sha256[:12]}…"
            )
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)


def folder_files(folder: Path) -> dict[str, Path]:
    """The files a registration uploads from a PEFT adapter folder: config and weights, and the
    user's README.md (model card) when there is one."""
    files = {"config": folder / "adapter_config.json", "weights": folder / "adapter_model.safetensors"}
    missing = [p.name for p in files.values() if not p.is_file()]
    if missing:
        raise InvalidInput(f"source: {folder} has no {', '.join(missing)}", field="source")
    if (folder / "README.md").is_file():
        files["readme"] = folder / "README.md"
    return files


def config_base_path(config_file: Path) -> str | None:
    """`base_model_name_or_path` of an adapter_config.json (None when absent or unreadable: the
    server reports a malformed config with the field's name)."""
    try:
        value = json.loads(config_file.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def form_fields(**fields: Any) -> dict[str, Any]:
    """Multipart text fields; a list repeats the field (tags=k=v ...); None and [] are left out."""
    return {key: value for key, value in fields.items() if value is not None and value != []}
