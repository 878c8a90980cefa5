"""The digest index (`artifact_files`): one row per recorded file of a version or merged model.

Written in the registering transaction, so a registered object is findable by any of its file digests
(weights, config, README, provenance, shards) as soon as it commits; `find_by_digest` reads it.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from registry.catalog import models as m


def index_files(session: Session, owner: m.AdapterVersion | m.MergedModel) -> None:
    """Add an ArtifactFile per entry of `owner.files` (entries without a digest are skipped).

    Rows refer to the owner by relationship, so this works before the owner is flushed.
    """
    version = owner if isinstance(owner, m.AdapterVersion) else None
    merged = owner if isinstance(owner, m.MergedModel) else None
    for filename, entry in sorted((owner.files or {}).items()):
        digest = entry.get("sha256") if isinstance(entry, dict) else None
        if not digest:
            continue
        session.add(
            m.ArtifactFile(
                digest=str(digest).lower(),
                kind="adapter_version" if version is not None else "merged_model",
                version=version,
                merged_model=merged,
                filename=filename,
            )
        )
