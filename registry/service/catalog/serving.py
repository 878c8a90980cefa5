"""Serving references for one version (registry.serving builds them): the registered base's source,
and a URL per file a serving host can fetch: presigned on an S3 store, else the server's own
authenticated download route (`link`, given by the REST layer). Never a path on the server's disk."""

from __future__ import annotations

from collections.abc import Callable

from registry.refs import Ref
from registry.service.catalog.downloads import version_prefix
from registry.service.catalog.resolve import aliases_of, resolve_version
from registry.service.context import Registry
from registry.serving import DEFAULT_DIR, ServingFile, ServingRefs, refs_for
from registry.views import VersionView

# (version, file name) -> the server's download URL of that file
Link = Callable[[VersionView, str], str]


def file_urls(
    reg: Registry, version: VersionView, expires: int, link: Link | None
) -> tuple[list[ServingFile], bool]:
    """Every file with its sha256, size and URL; True when the URLs are presigned (they expire)."""
    prefix = version_prefix(version)
    files, presigned = [], False
    for filename, entry in sorted(version.files.items()):
        url = reg.store.presigned_url(f"{prefix}/{filename}", expires)
        presigned = presigned or url is not None
        if url is None and link is not None:
            url = link(version, filename)
        files.append(ServingFile(file=filename, sha256=entry["sha256"], size=entry["size"], url=url))
    return files, presigned


def serving_refs(
    reg: Registry,
    ref: Ref | str,
    *,
    link: Link | None = None,
    pull_dir: str = DEFAULT_DIR,
    expires: int = 3600,
) -> ServingRefs:
    with reg.sessions() as session:
        row = resolve_version(session, ref, access=reg.acting)
        version = VersionView.of(row, aliases_of(session, row))
        base_source = row.adapter.base_model.source
    files, presigned = file_urls(reg, version, expires, link)
    return refs_for(
        version,
        base_source=base_source,
        files=files,
        expires_in=expires if presigned else None,
        s3_endpoint_url=reg.settings.s3_endpoint_url,
        pull_dir=pull_dir,
    )
