"""Merged-model output: base + composed delta as full weights, stored beside the adapter it came from."""

from __future__ import annotations

import hashlib
from pathlib import Path

from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.model_card import render_model_card
from registry.service.catalog import audit
from registry.service.catalog.artifact_index import index_files
from registry.service.catalog.resolve import resolve_version
from registry.service.compositions.runs import apply_transition
from registry.service.compositions.status import RunStatus, check_transition
from registry.service.context import Registry
from registry.service.registration.base_models import require_base_model


def merged_digest(files: dict[str, str]) -> str:
    """One digest for a multi-file model: sha256 over the sorted `name sha256` lines."""
    lines = "".join(f"{name} {sha}\n" for name, sha in sorted(files.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def register_merged(
    reg: Registry, composition_id: str, source: str, folder: Path, files: dict[str, str]
) -> str:
    """`source`: the composed adapter version (`ns/name@N`) merged into its base, already computed in
    `folder`. Stores it and ends run `composition_id` `succeeded` in the same transaction (the run was
    left `running` by register_output). Returns the digest."""
    with reg.sessions() as session:
        version = resolve_version(session, source, access=reg.acting)
        base = version.adapter.base_model
        full_name, adapter_sha, base_label = (
            version.adapter.full_name,
            version.sha256,
            f"{base.name}@{base.revision}",
        )
    namespace, name = full_name.split("/", 1)
    prefix = f"merged/{namespace}/{name}/{adapter_sha}"
    card = render_model_card(
        full_name=f"{full_name} (merged)",
        version=None,
        sha256=adapter_sha,
        base_model=base_label.partition("@")[0],
        pem_type="merged",
        task=None,
        tags={},
        description=f"{source} merged into {base_label}",
        relation="merge",
    )
    (folder / "README.md").write_text(card)
    files = {**files, "README.md": hashlib.sha256(card.encode()).hexdigest()}
    entries = {}
    for filename, sha in sorted(files.items()):
        path = folder / filename
        reg.store.put_file(f"{prefix}/{filename}", path, sha256=sha)
        entries[filename] = {"sha256": sha, "size": path.stat().st_size}
    digest = merged_digest(files)
    with transaction(reg.sessions) as session:
        # First, so a run reconciled away meanwhile stores no merged row (IllegalTransition rolls back).
        run = session.get_one(m.Composition, composition_id, with_for_update=True)
        check_transition(run.status, RunStatus.SUCCEEDED)
        version = resolve_version(session, source, access=reg.acting)
        session.add(
            merged := m.MergedModel(
                composition_id=composition_id,
                base_model_id=require_base_model(session, base_label).id,
                source_version_id=version.id,
                name=source,
                sha256=digest,
                files=entries,
                artifact_uri=f"{reg.store.url.rstrip('/')}/{prefix}",
                created_by=reg.principal,
            )
        )
        index_files(session, merged)
        audit.record(
            session,
            reg.principal,
            "register_merged",
            f"{source}:merged",
            sha256=digest,
            composition_id=composition_id,
        )
        apply_transition(run, RunStatus.SUCCEEDED)
    return digest
