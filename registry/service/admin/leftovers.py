"""What dead processes leave behind outside the catalog: scratch folders of uploads and registrations
(`pemreg-upload-*`, `pemreg-ingest-*`, `pemreg-out-*` in the temp dir), work folders of runs
(`<home>/cache/work/<run id>`) and half-downloaded cache folders (`.fetch-*`), incomplete store uploads
(S3 multipart uploads never completed; the file store's temporary files), and expired web sessions.

Found and removed by `pemreg gc` and at the start of `pemreg serve` / `pemreg worker`. Nothing younger
than the grace period (newest file inside, for folders) is touched, nor a scratch folder whose owner
process (the pid in its name) is alive on this host, nor the work folder of a run still pending or
running.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from registry.catalog import models as m
from registry.errors import StoreError
from registry.scratch import NAME_RE
from registry.service.admin.gc import Orphan, _cutoff
from registry.service.admin.sessions import prune_sessions
from registry.service.compositions.status import ACTIVE
from registry.service.context import Registry
from registry.store.base import IncompleteUpload

log = logging.getLogger("pemreg.gc")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    try:  # a zombie (killed, not yet reaped by its parent) holds no files: as good as dead
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _files(folder: Path) -> Iterator[Path]:
    for dirpath, _dirs, names in os.walk(folder):
        for name in names:
            yield Path(dirpath) / name


def _describe(kind: str, folder: Path) -> Orphan | None:
    """The folder as a gc entry (its newest time over itself and every file), None if it vanished."""
    try:
        newest = folder.stat().st_mtime
        size = 0
        keys = []
        for path in _files(folder):
            st = path.stat()
            newest, size = max(newest, st.st_mtime), size + st.st_size
            keys.append(path.relative_to(folder).as_posix())
    except FileNotFoundError:
        return None
    return Orphan(str(folder), sorted(keys), size, datetime.fromtimestamp(newest, UTC), kind=kind)


def _scratch(cutoff: datetime) -> list[Orphan]:
    found = []
    for folder in Path(tempfile.gettempdir()).glob("pemreg-*"):
        match = NAME_RE.fullmatch(folder.name)
        if match is None or not folder.is_dir():
            continue
        pid = match.group("pid")
        if pid is not None and int(pid) != os.getpid() and _alive(int(pid)):
            continue
        if pid is not None and int(pid) == os.getpid():
            continue  # this process's own, in use
        entry = _describe(match.group("kind"), folder)
        if entry is not None and entry.modified < cutoff:
            found.append(entry)
    return found


def _work(reg: Registry, cutoff: datetime) -> list[Orphan]:
    cache = reg.settings.home / "cache"
    candidates = [("work", p) for p in sorted((cache / "work").glob("*")) if p.is_dir()]
    for sub in ("adapters", "base"):
        candidates += [("fetch", p) for p in sorted((cache / sub).glob(".fetch-*")) if p.is_dir()]
        candidates += [("fetch", p) for p in sorted((cache / sub).glob(".broken-*")) if p.is_dir()]
    if not candidates:
        return []
    with reg.sessions() as session:
        active = set(
            session.scalars(
                select(m.Composition.id).where(m.Composition.status.in_([s.value for s in ACTIVE]))
            )
        )
    found = []
    for kind, folder in candidates:
        if kind == "work" and folder.name in active:
            continue
        entry = _describe(kind, folder)
        if entry is not None and entry.modified < cutoff:
            found.append(entry)
    return found


def _uploads(reg: Registry, cutoff: datetime) -> list[Orphan]:
    try:
        uploads = reg.store.list_incomplete_uploads()
    except StoreError as exc:  # a store without the permission to list them: say so, go on
        log.warning("cannot list incomplete uploads: %s", exc)
        return []
    return [
        Orphan(f"{u.key}#{u.upload_id}", [u.key], 0, u.initiated, kind="upload-parts")
        for u in uploads
        if u.initiated < cutoff
    ]


def find_leftovers(
    reg: Registry, *, grace_seconds: float | None = None, now: datetime | None = None
) -> list[Orphan]:
    cutoff = _cutoff(reg, grace_seconds, now)
    return _scratch(cutoff) + _work(reg, cutoff) + _uploads(reg, cutoff)


def remove_leftovers(
    reg: Registry, *, dry_run: bool, grace_seconds: float | None = None, now: datetime | None = None
) -> list[Orphan]:
    """The leftovers; removed unless `dry_run` (expired web sessions are pruned too)."""
    found = find_leftovers(reg, grace_seconds=grace_seconds, now=now)
    if dry_run:
        return found
    for entry in found:
        if entry.kind == "upload-parts":
            key, _, upload_id = entry.folder.rpartition("#")
            reg.store.abort_upload(IncompleteUpload(key, upload_id, entry.modified))
        else:
            shutil.rmtree(entry.folder, ignore_errors=True)
        log.info("removed %s leftover %s (%d bytes)", entry.kind, entry.folder, entry.size)
    prune_sessions(reg)
    return found


def at_start(reg: Registry) -> None:
    """`serve` / `worker` start-up: the leftovers of processes that died; never fatal."""
    try:
        removed = remove_leftovers(reg, dry_run=False)
    except Exception as exc:  # noqa: BLE001 - a cleanup must never keep a service from starting
        log.warning("start-up cleanup failed: %s", str(exc).splitlines()[0] if str(exc) else exc)
        return
    if removed:
        total = sum(e.size for e in removed)
        log.warning("removed %d leftovers of dead processes (%d bytes)", len(removed), total)
