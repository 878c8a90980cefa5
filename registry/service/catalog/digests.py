"""`pemreg audit FILE|sha256:HEX`: which registered object has this digest, and where it came from."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.catalog import models as m
from registry.catalog.prepared.core import CoreReads
from registry.errors import InvalidInput, NotFound
from registry.service.access.identity import Access
from registry.service.access.policy import readable
from registry.service.catalog.lineage import MAX_DEPTH, walk
from registry.service.context import Registry
from registry.views import ArtifactMatch

WEIGHTS_FILE = "adapter_model.safetensors"  # = registry.ingest.WEIGHTS_FILE (that module imports torch)


HEX_LIMIT = "g"  # one past 'f': [prefix, prefix + 'g') is every hex string starting with prefix


def _full_digest(session: Session, prefix: str, access: Access) -> str:
    """The one digest starting with `prefix` (6-63 hex digits) among the objects `access` may read, by
    index range scans: a hidden object neither makes a prefix ambiguous nor answers it."""
    version, adapter, merged = m.AdapterVersion, m.Adapter, m.MergedModel
    in_range = lambda column: (column >= prefix) & (column < prefix + HEX_LIMIT)  # noqa: E731
    visible = readable(access, adapter.namespace)
    queries = (
        select(m.ArtifactFile.digest)
        .join(version, version.id == m.ArtifactFile.version_id)
        .join(adapter, adapter.id == version.adapter_id)
        .where(in_range(m.ArtifactFile.digest), visible),
        select(m.ArtifactFile.digest)
        .join(merged, merged.id == m.ArtifactFile.merged_model_id)
        .join(version, version.id == merged.source_version_id)
        .join(adapter, adapter.id == version.adapter_id)
        .where(in_range(m.ArtifactFile.digest), visible),
        select(version.sha256)
        .join(adapter, adapter.id == version.adapter_id)
        .where(in_range(version.sha256), visible),
        select(merged.sha256)
        .join(version, version.id == merged.source_version_id)
        .join(adapter, adapter.id == version.adapter_id)
        .where(in_range(merged.sha256), visible),
    )
    found: set[str] = set()
    for query in queries:
        found.update(session.scalars(query.distinct().limit(2)))
    if len(found) > 1:
        raise InvalidInput(f"sha256:{prefix}: prefix is ambiguous; give more digits", field="sha256")
    if not found:
        raise NotFound(f"sha256:{prefix} is not a prefix of any registered object's file digest")
    return found.pop()


def find_by_digest(reg: Registry, digest: str, *, with_ancestry: bool = True) -> list[ArtifactMatch]:
    """Every version or merged model holding a file with this sha256 (weights, config, card, provenance)
    that the caller may read; `digest` may be a unique prefix (6+ hex digits), as in refs. Others are
    filtered in the owners' query, and when none is left the answer is the same NotFound as for a
    digest nothing has.

    Index lookups only: `artifact_files` by digest for any recorded file, plus the weights digest of a
    version and the aggregate digest of a merged model, which are indexed columns of their own.
    """
    access = reg.acting
    matches: list[ArtifactMatch] = []
    with reg.sessions() as session:
        if len(digest) < 64:
            digest = _full_digest(session, digest, access)
        version_file: dict[int, str] = {}  # owner id -> the (first) file with this digest
        merged_file: dict[int, str] = {}
        rows = session.execute(
            select(m.ArtifactFile.version_id, m.ArtifactFile.merged_model_id, m.ArtifactFile.filename)
            .where(m.ArtifactFile.digest == digest)
            .order_by(m.ArtifactFile.id)
        )
        for version_id, merged_id, filename in rows:
            if version_id is not None:
                version_file.setdefault(version_id, filename)
            elif merged_id is not None:
                merged_file.setdefault(merged_id, filename)
        # Also by the owners' own digest columns: a row written without the index (e.g. bulk-loaded)
        # is still found by its weights / aggregate digest, as before the index existed.
        for version_id in session.scalars(
            select(m.AdapterVersion.id).where(m.AdapterVersion.sha256 == digest)
        ):
            version_file.setdefault(version_id, WEIGHTS_FILE)
        for merged_id in session.scalars(select(m.MergedModel.id).where(m.MergedModel.sha256 == digest)):
            merged_file.setdefault(merged_id, "*")  # a digest over all shards, not of one file

        versions = session.scalars(
            select(m.AdapterVersion)
            .join(m.Adapter, m.Adapter.id == m.AdapterVersion.adapter_id)
            .where(m.AdapterVersion.id.in_(version_file), readable(access, m.Adapter.namespace))
            .order_by(m.AdapterVersion.id)
        ).all()
        for v in versions:
            ancestry = walk(CoreReads(session), v, "up", MAX_DEPTH, access) if with_ancestry else None
            matches.append(
                ArtifactMatch(
                    kind="adapter_version",
                    name=v.adapter.full_name,
                    version=v.version,
                    file=version_file[v.id],
                    sha256=digest,
                    ancestry=ancestry,
                    status=v.status,
                )
            )
        source, owner = m.AdapterVersion, m.Adapter
        merged_models = session.scalars(
            select(m.MergedModel)
            .join(source, source.id == m.MergedModel.source_version_id)
            .join(owner, owner.id == source.adapter_id)
            .where(m.MergedModel.id.in_(merged_file), readable(access, owner.namespace))
            .order_by(m.MergedModel.id)
        ).all()
        for merged in merged_models:
            made_from = (
                session.get(m.AdapterVersion, merged.source_version_id) if merged.source_version_id else None
            )
            matches.append(
                ArtifactMatch(
                    kind="merged_model",
                    name=merged.name,
                    version=None,
                    file=merged_file[merged.id],
                    sha256=digest,
                    ancestry=walk(CoreReads(session), made_from, "up", MAX_DEPTH, access)
                    if made_from and with_ancestry
                    else None,
                )
            )
    if not matches:
        raise NotFound(f"sha256:{digest} is not a file of any registered object")
    return matches
