"""`pemreg audit FILE|sha256:HEX`: which registered object has this digest, and where it came from."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from ..catalog import models as m
from ..errors import InvalidInput, NotFound
from ..hashing import sha256_file
from .context import Registry
from .lineage import MAX_DEPTH, walk
from .views import ArtifactMatch

HEX = set("0123456789abcdef")


def digest_of(target: str) -> str:
    """A file path (hashed here) or `sha256:HEX` (a full 64-digit digest)."""
    if target.startswith("sha256:"):
        digest = target.removeprefix("sha256:").lower()
        if len(digest) != 64 or not set(digest) <= HEX:
            raise InvalidInput(f"{target!r}: a sha256 digest has 64 hex digits", field="sha256")
        return digest
    path = Path(target).expanduser()
    if not path.is_file():
        raise InvalidInput(f"{target}: no such file (give a file or sha256:HEX)", field="file")
    return sha256_file(path)


def find_by_digest(reg: Registry, digest: str, *, with_ancestry: bool = True) -> list[ArtifactMatch]:
    """Every version or merged model holding a file with this sha256 (weights, config, card, provenance)."""
    matches: list[ArtifactMatch] = []
    with reg.sessions() as session:
        versions = session.scalars(select(m.AdapterVersion).where(m.AdapterVersion.sha256 == digest)).all()
        if not versions:
            # Not a weights digest: look through every recorded file digest (config, README, provenance).
            # JSON columns are not indexed for this, so it scans; weights lookups above use the index.
            versions = [
                v
                for v in session.scalars(select(m.AdapterVersion))
                if any(f.get("sha256") == digest for f in v.files.values())
            ]
        for v in versions:
            filename = next(
                (n for n, f in v.files.items() if f.get("sha256") == digest), "adapter_model.safetensors"
            )
            ancestry = walk(session, v, "up", MAX_DEPTH) if with_ancestry else None
            matches.append(
                ArtifactMatch(
                    kind="adapter_version",
                    name=v.adapter.full_name,
                    version=v.version,
                    file=filename,
                    sha256=digest,
                    ancestry=ancestry,
                )
            )
        for merged in session.scalars(select(m.MergedModel)):
            hit = merged.sha256 == digest or any(f.get("sha256") == digest for f in merged.files.values())
            if hit:
                source = (
                    session.get(m.AdapterVersion, merged.source_version_id)
                    if merged.source_version_id
                    else None
                )
                matches.append(
                    ArtifactMatch(
                        kind="merged_model",
                        name=merged.name,
                        version=None,
                        file=next((n for n, f in merged.files.items() if f.get("sha256") == digest), "*"),
                        sha256=digest,
                        ancestry=walk(session, source, "up", MAX_DEPTH) if source and with_ancestry else None,
                    )
                )
    if not matches:
        raise NotFound(f"sha256:{digest} is not a file of any registered object")
    return matches
