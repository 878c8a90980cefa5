"""The artifact store interface: a flat, immutable key -> bytes map under one root URL.

Keys are '/'-separated relative paths (`adapters/<ns>/<name>/<sha256>/adapter_model.safetensors`).
Writes never replace existing bytes; reads can be checked against a sha256.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ..errors import IntegrityError, StoreError

Progress = Callable[[int], None]
"""Called with the number of bytes just transferred (an increment, as Rich's `advance` wants)."""

CHUNK = 1024 * 1024
TMP_DIR = ".pemreg-tmp"  # reserved first key segment: the file store's in-flight uploads live there


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    modified: datetime  # timezone-aware (UTC)


@dataclass(frozen=True)
class IncompleteUpload:
    key: str  # relative to the store's root
    upload_id: str
    initiated: datetime


class ArtifactNotFound(StoreError):
    """The key is not in the store (the catalog points at something the store lacks)."""


def adapter_prefix(namespace: str, name: str, sha256: str) -> str:
    """Folder of one adapter version's files (layout in docs/provenance.md)."""
    return f"adapters/{namespace}/{name}/{sha256}"


def check_key(key: str) -> str:
    """Reject keys that could escape the root or alias another key on some backend."""
    parts = key.split("/")
    if (
        not key
        or "\\" in key
        or "\x00" in key
        or any(p in ("", ".", "..") for p in parts)
        or parts[0] == TMP_DIR
    ):
        raise StoreError(f"invalid artifact key {key!r}: use a relative path like 'a/b/file'")
    return key


def check_sha256(key: str, expected: str | None, actual: str, where: str) -> None:
    if expected is not None and expected.lower() != actual:
        raise IntegrityError(f"sha256 mismatch for {key!r} from {where}: expected {expected}, got {actual}")


class ArtifactStore(ABC):
    """What the service layer and shells use; pick an implementation with `open_store(url)`."""

    url: str

    @abstractmethod
    def ensure_ready(self) -> None:
        """Create the root (directory or bucket) if missing; StoreError on auth/permission failure."""

    @abstractmethod
    def ping(self) -> None:
        """Cheap reachability/credentials check (for /readyz); raises StoreError."""

    @abstractmethod
    def put_file(
        self,
        key: str,
        src_path: str | os.PathLike[str],
        *,
        sha256: str | None = None,
        progress: Progress | None = None,
    ) -> None:
        """Store a file under `key` once. Same bytes again: no-op; other bytes: Conflict.
        `sha256`, when given, is checked against the bytes read (IntegrityError, nothing stored).
        Nothing is visible under `key` unless the whole upload completed."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """`put_file` for in-memory data (model cards, provenance)."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def open_stream(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        """Chunks of the object. Opens eagerly, so ArtifactNotFound / StoreError are raised by this
        call, before an HTTP response has started streaming."""

    @abstractmethod
    def presigned_url(self, key: str, expires: int = 3600) -> str | None:
        """A time-limited GET URL, or None if the backend has none (file store: stream instead)."""

    @abstractmethod
    def list_keys(self, prefix: str = "") -> list[str]:
        """Sorted keys starting with `prefix` (a plain string prefix, as in S3)."""

    def list_objects(self, prefix: str = "") -> list[StoredObject]:
        """Like `list_keys`, with each object's size and last-modified time (for `pemreg gc`)."""
        raise NotImplementedError(f"{type(self).__name__} cannot list objects with their times")

    @abstractmethod
    def delete(self, key: str) -> None:
        """Admin delete; deleting a missing key is not an error."""

    def list_incomplete_uploads(self) -> list[IncompleteUpload]:
        """Uploads started and never completed nor aborted (a process killed mid-upload). Only S3 has
        them: a file store writes to a temporary sibling it removes itself."""
        return []

    def abort_upload(self, upload: IncompleteUpload) -> None:
        """Drop an incomplete upload's parts (it never became visible)."""
        raise NotImplementedError(f"{type(self).__name__} has no incomplete uploads")

    def get_file(
        self,
        key: str,
        dest_path: str | os.PathLike[str],
        *,
        sha256: str | None = None,
        progress: Progress | None = None,
    ) -> None:
        """Download to `dest_path` (replaced if present). The bytes land in a temporary sibling and
        are renamed into place only after the sha256 check, so a failure leaves no partial file."""
        dest = Path(dest_path)
        stream = self.open_stream(key)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
        digest = hashlib.sha256()
        try:
            try:
                fh = open(tmp, "wb")  # noqa: SIM115 - closed by the with below
            except OSError as exc:
                raise StoreError(f"cannot write {dest}: {exc.strerror}") from exc
            with fh:
                for chunk in stream:
                    fh.write(chunk)
                    digest.update(chunk)
                    if progress:
                        progress(len(chunk))
            check_sha256(key, sha256, digest.hexdigest(), self.url)
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            close = getattr(stream, "close", None)
            if close:
                close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"
