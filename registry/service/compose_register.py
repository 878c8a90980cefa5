"""Register a composition's output: upload (files, model card, provenance) first, then ONE transaction
with the version, lineage edges, evaluations, aliases and the composition record."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from ..catalog import models as m
from ..catalog.db import transaction
from ..catalog.upsert import insert_ignore
from ..spec import CompositionSpec
from . import audit
from .aliases import move_alias
from .compose_inputs import ResolvedInput
from .compositions import CompositionView, _view
from .context import Registry
from .register import commit_version, upload_version_files
from .resolve import resolve_version


def register_output(
    reg: Registry,
    composition: CompositionView,
    folder: Path,
    spec: CompositionSpec,
    inputs: list[ResolvedInput],
    *,
    evaluations: list[dict[str, Any]],
    metrics: dict[str, float],
    provenance: dict[str, Any],
) -> CompositionView:
    """`evaluations`: [{name, metric, dataset, dataset_sha256, value}] of the result.
    `provenance`: composition-specific provenance fields (merged into provenance.json)."""
    from ..ingest import ingest_folder

    with tempfile.TemporaryDirectory(prefix="pemreg-out-") as tmp:
        ingested = ingest_folder(folder, Path(tmp))  # the output passes the same validation as an upload
        base_label = inputs[0].base_model
        parents = [
            {"name": i.name, "version": i.version, "sha256": i.sha256, "weight": i.weight} for i in inputs
        ]
        artifact_uri, files = upload_version_files(
            reg,
            spec.name,
            ingested,
            base_model=base_label.partition("@")[0],
            task=None,
            tags={},
            description=spec.description,
            provenance_extra=provenance,
            trigger=composition.trigger,
            card_extra={"parents": parents, "metrics": metrics, "method": spec.method},
        )
        with transaction(reg.sessions) as session:
            version, _ = commit_version(
                session,
                reg,
                spec.name,
                ingested,
                artifact_uri=artifact_uri,
                files=files,
                base_model=base_label,
                task=None,
                tags={"composed_by": spec.method},
                description=spec.description,
            )
            for item in inputs:
                parent = resolve_version(session, f"{item.name}@{item.version}")
                # The same bytes composed again (e.g. a recomposition that changed nothing) keep one edge.
                insert_ignore(
                    session,
                    m.LineageEdge,
                    {
                        "parent_version_id": parent.id,
                        "child_version_id": version.id,
                        "operator": spec.method,
                        "weight": item.weight,
                        "composition_id": composition.id,
                    },
                    conflict=["parent_version_id", "child_version_id"],
                )
            for ev in evaluations:
                session.add(
                    m.Evaluation(
                        version_id=version.id,
                        composition_id=composition.id,
                        name=ev["name"],
                        metric=ev["metric"],
                        dataset_uri=ev["dataset"],
                        dataset_sha256=ev["dataset_sha256"],
                        value=ev["value"],
                    )
                )
            for alias in spec.output.aliases:
                move_alias(session, reg.principal, version, alias)
            row = session.get_one(m.Composition, composition.id, with_for_update=True)
            row.status = "succeeded"
            row.output_version_id = version.id
            row.metrics = metrics
            row.finished_at = m.utcnow()
            audit.record(
                session,
                reg.principal,
                "compose_register",
                f"{spec.name}@{version.version}",
                composition_id=composition.id,
                sha256=version.sha256,
            )
            session.flush()
            return _view(session, row)
