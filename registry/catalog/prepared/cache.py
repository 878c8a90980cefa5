"""Compiled reads kept on disk between commands, like Python's own __pycache__: one file per version of
the code that builds them, so a changed builder, table or SQLAlchemy never runs stale SQL."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import sys
import time
from importlib.util import find_spec
from pathlib import Path

from .compiled import CompiledRead

KEPT = 4
FORMAT = 1  # of the files (CompiledRead's fields): a change makes every older file unread
_PACKAGE = Path(__file__).resolve().parents[2]  # registry/


class _NoSources(Exception):
    """The registry package has no .py files to fingerprint (a bytecode-only install): nothing is kept."""


def code_fingerprint() -> str:
    """What the compiled SQL depends on: every module of the registry package (path, size, mtime) and its
    version, the SQLAlchemy installed, Python's and SQLite's versions, this cache's format. Statted, not
    read: 2-4 ms for the package."""
    from registry import __version__

    digest = hashlib.sha256(f"{FORMAT}\0{__version__}\0".encode())
    sources = 0
    for root, dirs, files in os.walk(_PACKAGE):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(root, name)
                st = os.stat(path)
                digest.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
                sources += 1
    if not sources:
        raise _NoSources(str(_PACKAGE))
    spec = find_spec("sqlalchemy")
    if spec is not None and spec.origin:
        st = os.stat(spec.origin)
        digest.update(f"{spec.origin}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    digest.update(f"{sys.version}\0{sqlite3.sqlite_version}".encode())
    return digest.hexdigest()[:32]


class ReadCache:
    """`directory`/<fingerprint>.json: {statement key: CompiledRead}. A write replaces the file in one
    rename (readers see the old file or the new one); two commands adding at once may lose one's entry,
    which the next run compiles again."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._entries: dict[str, CompiledRead] | None = None
        self._path: Path | None = None

    @property
    def path(self) -> Path:
        if self._path is None:
            self._path = self.directory / f"{code_fingerprint()}.json"
        return self._path

    def _load(self) -> dict[str, CompiledRead]:
        if self._entries is None:
            try:
                raw = json.loads(self.path.read_text())
                self._entries = {key: CompiledRead.from_json(value) for key, value in raw.items()}
            except (OSError, ValueError, KeyError, TypeError, AttributeError, _NoSources):
                self._entries = {}  # none yet, unreadable, or nothing to key it by: compiled again
        return self._entries

    def get(self, key: str) -> CompiledRead | None:
        return self._load().get(key)

    def put(self, key: str, compiled: CompiledRead) -> None:
        import tempfile  # only when a statement was compiled: a warm read never writes

        entries = self._load()
        entries[key] = compiled
        try:
            path = self.path  # _NoSources: nothing to key the file by, nothing written
            text = json.dumps({k: v.to_json() for k, v in entries.items()}, sort_keys=True)
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".partial-", suffix=".tmp")
            try:
                with os.fdopen(fd, "w") as out:
                    out.write(text)
                os.replace(tmp, path)
            finally:
                Path(tmp).unlink(missing_ok=True)
            self._prune()
        except (OSError, TypeError, ValueError, _NoSources):
            pass  # a cache that cannot be written (read-only home): every run compiles, still correct

    def _prune(self) -> None:
        """Keep the files of the KEPT most recently written versions of the code (an upgrade, a checkout),
        and no partial file a killed command left over an hour ago."""
        files = sorted(self.directory.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in files[KEPT:]:
            old.unlink(missing_ok=True)
        for partial in self.directory.glob(".partial-*.tmp"):
            if time.time() - partial.stat().st_mtime > 3600:
                partial.unlink(missing_ok=True)
