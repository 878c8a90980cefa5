"""JSONL datasets from `file://`, a local path, or `s3://`; their sha256 goes into provenance.

Who may read what is a `DatasetAccess` the shell hands in. The CLI acts as the local user and may read
any local file or bucket its credentials reach. A REST caller acts on the server's disk and
credentials, so it may only name datasets in the artifact store or under roots the operator listed in
`PEMREG_DATASET_ROOTS`; anything else is refused with one message that says nothing about whether the
file exists or what it holds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

from ..errors import InvalidInput, StoreError
from ..hashing import sha256_bytes
from ..paths import user_path
from ..store import ArtifactStore

REQUIRED = {"perplexity": ("text",), "accuracy": ("text", "label")}


@dataclass(frozen=True)
class Dataset:
    uri: str
    sha256: str
    rows: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class DatasetAccess:
    """`local_user`: any local path or bucket (the CLI). Otherwise only under `roots`: absolute real
    directory paths and `s3://bucket/prefix/` strings (the artifact store is always one of them)."""

    local_user: bool
    roots: tuple[str, ...] = ()

    @classmethod
    def for_local_user(cls) -> DatasetAccess:
        return cls(local_user=True)

    @classmethod
    def for_remote_caller(cls, store_url: str, dataset_roots: str = "") -> DatasetAccess:
        """`resolved_artifact_store` and `dataset_roots` (comma-separated: URIs hold colons)."""
        given = [store_url, *(r for r in dataset_roots.split(",") if r.strip())]
        return cls(local_user=False, roots=tuple(_root(r.strip()) for r in given))

    @classmethod
    def for_trigger(cls, settings: Any, trigger: str) -> DatasetAccess:
        """A run's access from who triggered it: `api` runs (REST callers) are remote, the rest local."""
        if trigger != "api":
            return cls.for_local_user()
        return cls.for_remote_caller(settings.resolved_artifact_store, settings.dataset_roots)

    def check(self, uri: str, field: str = "dataset") -> None:
        """Refuse a dataset this caller may not name; the same message whether or not it exists."""
        if self.local_user:
            return
        where = _location(uri)
        if where is None or not any(_under(where, root) for root in self.roots):
            raise InvalidInput(
                f"{field}: {uri[:200]!r} is not in the artifact store or under an allowed dataset root "
                "(PEMREG_DATASET_ROOTS)",
                field=field,
            )


def _root(text: str) -> str:
    if text.startswith("s3://"):
        return text.rstrip("/") + "/"
    path = Path(unquote(urlparse(text).path)) if text.startswith("file://") else Path(text)
    return str(path.resolve()).rstrip("/") + "/"


def _location(uri: str) -> str | None:
    """A comparable location (`s3://bucket/key` or a real absolute path), or None for what a remote
    caller may never name: `~` paths, relative paths, `..` in a key, other hosts and schemes."""
    if any(ord(c) < 32 or ord(c) == 127 for c in uri):
        return None
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        key = PurePosixPath(unquote(parsed.path))
        if not parsed.netloc or ".." in key.parts:
            return None
        return f"s3://{parsed.netloc}/{str(key).lstrip('/')}"
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            return None
        text = unquote(parsed.path)
    elif parsed.scheme:
        return None
    else:
        text = uri
    if not text.startswith("/"):
        return None  # relative to the server's working directory, or ~user: never a caller's to name
    try:
        return str(Path(text).resolve())  # symlinks and `..` resolved before the containment test
    except (OSError, RuntimeError, ValueError):
        return None


def _under(location: str, root: str) -> bool:
    return location.startswith(root)


def check_datasets(uris: Iterable[str], access: DatasetAccess, field: str = "evaluate") -> None:
    """Spec validation: every `evaluate[i].dataset` of a spec, before a run is accepted."""
    for i, uri in enumerate(uris):
        access.check(uri, field=f"{field}[{i}].dataset")


def _read(uri: str, open_store: Any, access: DatasetAccess) -> bytes:
    access.check(uri)
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        bucket_store: ArtifactStore = open_store(f"s3://{parsed.netloc}")
        key = parsed.path.lstrip("/")
        try:
            return b"".join(bucket_store.open_stream(key))
        except StoreError as exc:
            raise InvalidInput(f"dataset: cannot read {uri}: {exc}", field="dataset") from None
    path = Path(unquote(parsed.path)) if parsed.scheme == "file" else user_path(uri)
    if not path.is_file():
        raise InvalidInput(f"dataset: {uri} is not a file", field="dataset")
    return path.read_bytes()


def load_dataset(uri: str, metric: str, open_store: Any, access: DatasetAccess | None = None) -> Dataset:
    """`open_store(url) -> ArtifactStore` supplies configured S3 credentials (the caller's settings).
    `access` defaults to the local user's (the CLI, the demo); REST-triggered runs pass their own."""
    data = _read(uri, open_store, access or DatasetAccess.for_local_user())
    rows = []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"dataset: {uri} is not UTF-8 text", field="dataset") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):
            raise InvalidInput(f"dataset: {uri} line {lineno} is not JSON", field="dataset") from None
        if not isinstance(row, dict):
            raise InvalidInput(f"dataset: {uri} line {lineno} is not a JSON object", field="dataset")
        missing = [k for k in REQUIRED[metric] if not isinstance(row.get(k), str)]
        if missing:
            raise InvalidInput(
                f"dataset: {uri} line {lineno} needs string field(s) {missing} for {metric}", field="dataset"
            )
        rows.append(row)
    if not rows:
        raise InvalidInput(f"dataset: {uri} has no rows", field="dataset")
    return Dataset(uri=uri, sha256=sha256_bytes(data), rows=tuple(rows))
