"""Streaming sha256 of files, so multi-GB artifacts never sit in memory whole."""

from __future__ import annotations

import hashlib
from pathlib import Path

from .errors import InvalidInput
from .paths import user_path

CHUNK = 1024 * 1024


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest_of(target: str) -> str:
    """`pemreg audit`'s argument: a file path (hashed here) or `sha256:HEX`, a digest or a prefix of
    one with 6-64 hex digits, as refs accept (`find_by_digest` resolves a prefix)."""
    if target.startswith("sha256:"):
        digest = target.removeprefix("sha256:").lower()
        if not 6 <= len(digest) <= 64 or not set(digest) <= set("0123456789abcdef"):
            raise InvalidInput(
                f"{target[:80]!r}: give a sha256 digest or a prefix of it (6-64 hex digits)", field="sha256"
            )
        return digest
    path = user_path(target)
    if not path.is_file():
        raise InvalidInput(f"{target}: no such file (give a file or sha256:HEX)", field="file")
    return sha256_file(path)
