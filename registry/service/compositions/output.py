"""Register a composition's output: upload (files, model card, provenance) first, then ONE transaction
with the version, lineage edges, evaluations, aliases and the composition record."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.catalog.upsert import insert_ignore
from registry.failpoints import failpoint
from registry.scratch import scratch_dir
from registry.service.access.policy import require_alias
from registry.service.catalog import audit
from registry.service.catalog.aliases import move_alias
from registry.service.catalog.resolve import resolve_version
from registry.service.compositions.inputs import ResolvedInput
from registry.service.compositions.reads import CompositionView, view_of
from registry.service.compositions.records import CompositionProvenance, EvaluationRecord
from registry.service.compositions.runs import apply_transition
from registry.service.compositions.status import RunStatus, check_transition
from registry.service.context import Registry
from registry.service.registration.register import ProgressFactory, commit_version, upload_version_files
from registry.spec import CompositionSpec


def _mid_upload_failpoint() -> ProgressFactory:
    """A progress factory: called before each file's upload, so its second call is mid-upload."""
    calls: list[str] = []

    def factory(filename: str, _size: int) -> Callable[[int], None]:
        if calls:
            failpoint("mid_upload")
        calls.append(filename)
        return lambda _n: None

    return factory


def register_output(
    reg: Registry,
    composition: CompositionView,
    folder: Path,
    spec: CompositionSpec,
    inputs: list[ResolvedInput],
    *,
    evaluations: list[EvaluationRecord],
    metrics: dict[str, float],
    provenance: CompositionProvenance,
    succeed: bool = True,
) -> CompositionView:
    """`evaluations`: the result's evaluations; `provenance`: the composition part of provenance.json.
    `succeed=False` (a merged-model output): the run stays `running` with its output version set, and
    `register_merged` ends it once the merged model is stored, so `succeeded` means every output exists.

    A run that stops between the upload and the commit leaves content-addressed objects no row
    references; `pemreg gc` removes them after its grace period."""
    from registry.ingest import ingest_folder

    failpoint("before_upload")
    with scratch_dir("out") as tmp:
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
            provenance_extra=provenance.to_dict(),
            trigger=composition.trigger,
            card_extra={"parents": parents, "metrics": metrics, "method": spec.method},
            progress=_mid_upload_failpoint(),
        )
        failpoint("before_commit")
        with transaction(reg.sessions) as session:
            # First, so a run reconciled away meanwhile registers nothing (IllegalTransition rolls back).
            row = session.get_one(m.Composition, composition.id, with_for_update=True)
            check_transition(row.status, RunStatus.SUCCEEDED)
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
                parent = resolve_version(session, f"{item.name}@{item.version}", access=reg.acting)
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
                        name=ev.name,
                        metric=ev.metric,
                        dataset_uri=ev.dataset,
                        dataset_sha256=ev.dataset_sha256,
                        value=ev.value,
                    )
                )
            for alias in spec.output.aliases:
                require_alias(session, reg.acting, spec.name, alias, "compose")
                move_alias(session, reg.principal, version, alias)
            if succeed:
                apply_transition(row, RunStatus.SUCCEEDED, output_version_id=version.id, metrics=metrics)
            else:
                row.output_version_id, row.metrics = version.id, metrics
            audit.record(
                session,
                reg.principal,
                "compose_register",
                f"{spec.name}@{version.version}",
                composition_id=composition.id,
                sha256=version.sha256,
            )
            session.flush()
            return view_of(session, row)
