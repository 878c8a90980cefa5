"""file:// store: the embedded default. Keys map to paths under one root directory.

An upload is written to `<root>/.pemreg-tmp/`, fsynced, then hard-linked to its final path. A link
fails if the target exists, so "create unless present" is atomic and a reader never sees a partial
file; the temp dir sits on the same filesystem (a rename/link cannot cross filesystems).
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from ..errors import Conflict, StoreError
from .base import (
    CHUNK,
    TMP_DIR,
    ArtifactNotFound,
    ArtifactStore,
    IncompleteUpload,
    Progress,
    StoredObject,
    check_key,
    check_sha256,
)

# Filesystems without hard links (some FUSE/SMB mounts): fall back to check-then-rename.
_NO_LINK = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV}


def _hash_stream(fh: BinaryIO) -> str:
    digest = hashlib.sha256()
    while chunk := fh.read(CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def _hash_path(path: Path) -> str:
    with open(path, "rb") as fh:
        return _hash_stream(fh)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileStore(ArtifactStore):
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().absolute()
        self.url = self.root.as_uri()
        self._tmp = self.root / TMP_DIR

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def ensure_ready(self) -> None:
        try:
            self._tmp.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create artifact directory {self.root}: {exc.strerror}") from exc
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StoreError(f"artifact directory {self.root} is not writable")

    def ping(self) -> None:
        if not self.root.is_dir():
            raise StoreError(f"artifact directory {self.root} does not exist (run `pemreg init`)")

    def put_file(
        self,
        key: str,
        src_path: str | os.PathLike[str],
        *,
        sha256: str | None = None,
        progress: Progress | None = None,
    ) -> None:
        try:
            src = open(src_path, "rb")  # noqa: SIM115 - closed below, also on error
        except OSError as exc:
            raise StoreError(f"cannot read {src_path}: {exc.strerror}") from exc
        with src:
            self._put(key, src, sha256, progress, str(src_path))

    def put_bytes(self, key: str, data: bytes) -> None:
        self._put(key, io.BytesIO(data), None, None, "memory")

    def _put(
        self, key: str, src: BinaryIO, sha256: str | None, progress: Progress | None, where: str
    ) -> None:
        dest = self._path(key)
        if dest.exists():  # cheap path for the common "registered again" case: no copy at all
            self._same_or_conflict(key, dest, sha256, _hash_stream(src), where)
            return
        self.ensure_ready()
        tmp = self._tmp / uuid.uuid4().hex
        try:
            digest = hashlib.sha256()
            with open(tmp, "wb") as out:
                while chunk := src.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    if progress:
                        progress(len(chunk))
                out.flush()
                os.fsync(out.fileno())
            actual = digest.hexdigest()
            check_sha256(key, sha256, actual, where)
            os.chmod(tmp, 0o444)  # stored bytes are immutable; guards against tools writing in place
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(tmp, dest)
            except FileExistsError:  # a concurrent writer won the race
                self._same_or_conflict(key, dest, sha256, actual, where)
                return
            except OSError as exc:
                if exc.errno not in _NO_LINK:
                    raise
                if dest.exists():
                    self._same_or_conflict(key, dest, sha256, actual, where)
                    return
                os.replace(tmp, dest)
            _fsync_dir(dest.parent)
        except OSError as exc:
            raise StoreError(f"cannot write {key!r} to {self.url}: {exc.strerror or exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)

    def _same_or_conflict(self, key: str, dest: Path, sha256: str | None, actual: str, where: str) -> None:
        check_sha256(key, sha256, actual, where)
        if _hash_path(dest) != actual:
            raise Conflict(f"artifact {key!r} already exists in {self.url} with other content (immutable)")

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def open_stream(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        path = self._path(key)
        try:
            fh = open(path, "rb")  # noqa: SIM115 - handed to the generator, which closes it
        except FileNotFoundError:
            raise ArtifactNotFound(f"artifact {key!r} not found in {self.url}") from None
        except OSError as exc:
            raise StoreError(f"cannot read {key!r} from {self.url}: {exc.strerror}") from exc

        def chunks() -> Iterator[bytes]:
            with fh:
                while chunk := fh.read(chunk_size):
                    yield chunk

        return chunks()

    def presigned_url(self, key: str, expires: int = 3600) -> str | None:
        return None

    def list_keys(self, prefix: str = "") -> list[str]:
        # Walk only the deepest directory the prefix names, then filter by plain string prefix.
        base_dir = prefix.rpartition("/")[0]
        start = self._path(base_dir) if base_dir else self.root
        keys = []
        for dirpath, dirnames, filenames in os.walk(start):
            if Path(dirpath) == self.root and TMP_DIR in dirnames:
                dirnames.remove(TMP_DIR)
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for fn in filenames:
                key = fn if rel == "." else f"{rel}/{fn}"
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def list_objects(self, prefix: str = "") -> list[StoredObject]:
        out = []
        for key in self.list_keys(prefix):
            try:
                st = self._path(key).stat()
            except FileNotFoundError:  # deleted since the walk
                continue
            out.append(StoredObject(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC)))
        return out

    def list_incomplete_uploads(self) -> list[IncompleteUpload]:
        """Temporary files of writes whose process died before linking them into place."""
        out = []
        for tmp in sorted(self._tmp.glob("*")) if self._tmp.is_dir() else []:
            try:
                modified = datetime.fromtimestamp(tmp.stat().st_mtime, UTC)
            except FileNotFoundError:  # linked and removed since the listing
                continue
            out.append(IncompleteUpload(f"{TMP_DIR}/{tmp.name}", tmp.name, modified))
        return out

    def abort_upload(self, upload: IncompleteUpload) -> None:
        (self._tmp / upload.upload_id).unlink(missing_ok=True)

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        # Prune now-empty folders so list/ls of the layout does not show husks of deleted versions.
        parent = path.parent
        while parent != self.root:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent
