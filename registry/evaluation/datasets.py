"""JSONL datasets from `file://`, a local path, or `s3://`; their sha256 goes into provenance."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
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


def _read(uri: str, open_store: Any) -> bytes:
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


def load_dataset(uri: str, metric: str, open_store: Any) -> Dataset:
    """`open_store(url) -> ArtifactStore` supplies configured S3 credentials (the caller's settings)."""
    data = _read(uri, open_store)
    rows = []
    for lineno, line in enumerate(data.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise InvalidInput(f"dataset: {uri} line {lineno} is not JSON", field="dataset") from None
        missing = [k for k in REQUIRED[metric] if not isinstance(row.get(k), str)]
        if missing:
            raise InvalidInput(
                f"dataset: {uri} line {lineno} needs string field(s) {missing} for {metric}", field="dataset"
            )
        rows.append(row)
    if not rows:
        raise InvalidInput(f"dataset: {uri} has no rows", field="dataset")
    return Dataset(uri=uri, sha256=sha256_bytes(data), rows=tuple(rows))
