"""Evaluation results in the catalog; also the per-digest cache for parents' metrics."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select

from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.service.catalog.resolve import resolve_version
from registry.service.context import Registry


def cached_value(reg: Registry, version_label: str, metric: str, dataset_sha256: str) -> float | None:
    return cached_values(reg, version_label, {"value": (metric, dataset_sha256)}).get("value")


def cached_values(
    reg: Registry, version_label: str, wanted: Mapping[str, tuple[str, str]]
) -> dict[str, float]:
    """name -> the version's recorded value of each wanted (metric, dataset sha256) it has, the latest
    when several were recorded; one query for all of them (a report reads hundreds per version)."""
    with reg.sessions() as session:
        version = resolve_version(session, version_label, access=reg.acting)
        rows = session.execute(
            select(m.Evaluation.metric, m.Evaluation.dataset_sha256, m.Evaluation.value)
            .where(
                m.Evaluation.version_id == version.id,
                m.Evaluation.metric.in_({metric for metric, _ in wanted.values()}),
                m.Evaluation.dataset_sha256.in_({digest for _, digest in wanted.values()}),
            )
            .order_by(m.Evaluation.id)
        ).all()
    latest = {(metric, digest): value for metric, digest, value in rows}  # ascending ids: the last wins
    return {name: latest[key] for name, key in wanted.items() if key in latest}


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
