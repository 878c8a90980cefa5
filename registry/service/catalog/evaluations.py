"""Evaluation results in the catalog; also the per-digest cache for parents' metrics."""

from __future__ import annotations

from sqlalchemy import select

from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.service.catalog.resolve import resolve_version
from registry.service.context import Registry


def cached_value(reg: Registry, version_label: str, metric: str, dataset_sha256: str) -> float | None:
    with reg.sessions() as session:
        version = resolve_version(session, version_label, access=reg.acting)
        return session.scalar(
            select(m.Evaluation.value)
            .where(
                m.Evaluation.version_id == version.id,
                m.Evaluation.metric == metric,
                m.Evaluation.dataset_sha256 == dataset_sha256,
            )
            .order_by(m.Evaluation.id.desc())
            .limit(1)
        )


def record(
    reg: Registry,
    version_label: str,
    *,
    name: str,
    metric: str,
    dataset_uri: str,
    dataset_sha256: str,
    value: float,
    composition_id: str | None,
) -> None:
    with transaction(reg.sessions) as session:
        version = resolve_version(session, version_label, access=reg.acting)
        session.add(
            m.Evaluation(
                version_id=version.id,
                composition_id=composition_id,
                name=name,
                metric=metric,
                dataset_uri=dataset_uri,
                dataset_sha256=dataset_sha256,
                value=value,
            )
        )
