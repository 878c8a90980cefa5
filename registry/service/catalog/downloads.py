"""Fetch a version's files from the store, each checked against its recorded sha256."""

from __future__ import annotations

from pathlib import Path

from registry.refs import Ref
from registry.service.catalog.queries import get_version
from registry.service.context import Registry
from registry.service.registration.register import ProgressFactory
from registry.store import adapter_prefix
from registry.views import VersionView


def version_prefix(version: VersionView) -> str:
    namespace, name = version.name.split("/", 1)
    return adapter_prefix(namespace, name, version.sha256)


def download_version(
    reg: Registry, ref: Ref | str, dest: Path, *, progress: ProgressFactory | None = None
) -> tuple[VersionView, list[Path]]:
    version = get_version(reg, ref)
    dest.mkdir(parents=True, exist_ok=True)
    prefix = version_prefix(version)
    written = []
    for filename, entry in sorted(version.files.items()):
        callback = progress(filename, entry["size"]) if progress else None
        reg.store.get_file(f"{prefix}/{filename}", dest / filename, sha256=entry["sha256"], progress=callback)
        written.append(dest / filename)
    return version, written
