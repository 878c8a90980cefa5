"""`pemreg gc`: store objects no catalog row references (uploads of runs that never registered).

The store is content-addressed: one folder per stored version, `<kind>/<ns>/<name>/<sha256>/` with
kind `adapters` or `merged`. A folder is an orphan when no catalog row references it and its newest
object is older than the grace period (settings.gc_grace_seconds), so an upload in flight, whose
commit has not happened yet, is never touched. A version deleted (`pemreg adapters delete`) longer
ago than that grace period references nothing any more: its folder is collected like an orphan.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select

from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.service.admin import metrics
from registry.service.catalog import audit
from registry.service.context import Registry
from registry.store.base import StoredObject

KINDS = ("adapters", "merged")


def _folder_of_uri(uri: str) -> str | None:
    """`.../<kind>/<ns>/<name>/<sha256>` -> that layout folder (independent of the store URL)."""
    parts = uri.rstrip("/").split("/")
    if len(parts) >= 4 and parts[-4] in KINDS:
        return "/".join(parts[-4:])
    return None


def referenced_folders(reg: Registry, deleted_before: datetime | None = None) -> set[str]:
    """Every store folder a catalog row references: adapter versions and merged models; with
    `deleted_before`, a version deleted before that time no longer counts.

    The one answer to "which stored content is in use"; gc deletes only what is outside it."""
    versions = select(m.AdapterVersion.artifact_uri)
    if deleted_before is not None:
        versions = versions.where(
            or_(
                m.AdapterVersion.status != "deleted",
                m.AdapterVersion.deleted_at.is_(None),
                m.AdapterVersion.deleted_at >= deleted_before,
            )
        )
    with reg.sessions() as session:
        uris = list(session.scalars(versions))
        uris += list(session.scalars(select(m.MergedModel.artifact_uri)))
    return {f for f in map(_folder_of_uri, uris) if f}


@dataclass(frozen=True)
class Orphan:
    folder: str
    keys: list[str]
    size: int
    modified: datetime  # the newest object's time
    # `store`: a store folder no row references; the leftovers of dead processes (leftovers.py):
    # `upload`/`ingest`/`out` scratch folders, `work`/`fetch` cache folders, `upload-parts`.
    kind: str = "store"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "modified": self.modified.isoformat()}


def _folder_of_key(key: str) -> str | None:
    parts = key.split("/")
    return "/".join(parts[:4]) if len(parts) >= 5 and parts[0] in KINDS else None


def _cutoff(reg: Registry, grace_seconds: float | None, now: datetime | None) -> datetime:
    grace = reg.settings.gc_grace_seconds if grace_seconds is None else grace_seconds
    return (now or m.utcnow()) - timedelta(seconds=grace)


def find_orphans(
    reg: Registry, *, grace_seconds: float | None = None, now: datetime | None = None
) -> list[Orphan]:
    cutoff = _cutoff(reg, grace_seconds, now)
    objects: list[StoredObject] = []
    for kind in KINDS:
        objects += reg.store.list_objects(f"{kind}/")
    referenced = referenced_folders(reg, cutoff)  # after listing: a row committed meanwhile is still seen
    folders: dict[str, list[StoredObject]] = {}
    for obj in objects:
        folder = _folder_of_key(obj.key)
        if folder is not None and folder not in referenced:
            folders.setdefault(folder, []).append(obj)
    orphans = []
    for folder, objs in sorted(folders.items()):
        newest = max(o.modified for o in objs)
        if newest < cutoff:
            orphans.append(Orphan(folder, [o.key for o in objs], sum(o.size for o in objs), newest))
    return orphans


def collect(
    reg: Registry, *, dry_run: bool, grace_seconds: float | None = None, now: datetime | None = None
) -> list[Orphan]:
    """The orphans; removed (and audited) unless `dry_run`. Each folder is re-checked against the
    catalog right before its deletion."""
    cutoff = _cutoff(reg, grace_seconds, now)
    orphans = find_orphans(reg, grace_seconds=grace_seconds, now=now)
    if dry_run or not orphans:
        return orphans
    removed = []
    for orphan in orphans:
        if orphan.folder in referenced_folders(reg, cutoff):
            continue
        for key in orphan.keys:
            reg.store.delete(key)
        metrics.gc_objects_deleted(len(orphan.keys))
        with transaction(reg.sessions) as session:
            audit.record(
                session, reg.principal, "gc_delete", orphan.folder, keys=len(orphan.keys), size=orphan.size
            )
        removed.append(orphan)
    return removed
