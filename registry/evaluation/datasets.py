"""JSONL datasets from `file://`, a local path, or `s3://`; their sha256 goes into provenance.

Who may read what is the `SourceAccess` (registry/sources.py) of the principal the run acts as: the
local user reads any local file; a REST caller, and every run it stored, only the artifact store and
the operator's roots, refused with one message that says nothing about whether the file exists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from ..errors import InvalidInput, StoreError
from ..hashing import sha256_bytes
from ..paths import user_path
from ..sources import SourceAccess
from ..store import ArtifactStore

REQUIRED = {"perplexity": ("text",), "accuracy": ("text", "label")}


@dataclass(frozen=True)
class Dataset:
    uri: str
    sha256: str
    rows: tuple[dict[str, Any], ...]


def _read(uri: str, open_store: Any, access: SourceAccess) -> bytes:
    access.check(uri, "dataset")
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


def load_dataset(uri: str, metric: str, open_store: Any, access: SourceAccess | None = None) -> Dataset:
    """`open_store(url) -> ArtifactStore` supplies configured S3 credentials (the caller's settings).
    `access` defaults to the local user's (the CLI, the demo); runs pass their principal's."""
    data = _read(uri, open_store, access or SourceAccess.for_local_user())
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
