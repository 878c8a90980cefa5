"""Stored specs: the newest spec a principal submitted per output name, and who submitted it.

A spec is stored by a submission (REST, CLI, demo): its run row keeps the canonical spec and the
principal. Runs made from it later (`schedule`, `recompose`) are derived and never store anything: a
schedule's runs act as the principal who stored it, and a worker builds one deployment per stored
spec that carries a `schedule`. Posting the same output name again without `schedule` removes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select

from registry.catalog import models as m
from registry.service.context import Registry

DERIVED_TRIGGERS = ("schedule", "recompose")  # runs made from a stored spec; they store nothing


@dataclass(frozen=True)
class StoredSpec:
    run_id: str  # the submission that stored it
    name: str
    spec: dict[str, Any]  # canonical
    principal: str  # who stored it (what its schedule acts as) ...
    api_key_id: int | None  # ... and, for a key, the key row it used
    created_at: datetime


def newest_specs(reg: Registry, name: str | None = None) -> dict[str, StoredSpec]:
    """Output name -> the newest stored spec (optionally of one name)."""
    c = m.Composition
    stored = c.trigger.not_in(DERIVED_TRIGGERS)
    newest = select(c.output_name, func.max(c.created_at).label("at")).where(stored).group_by(c.output_name)
    if name is not None:
        newest = newest.where(c.output_name == name)
    sub = newest.subquery()
    query = (
        select(c)
        .join(sub, and_(c.output_name == sub.c.output_name, c.created_at == sub.c.at))
        .where(stored)
        .order_by(c.created_at, c.id)
    )
    out: dict[str, StoredSpec] = {}
    with reg.sessions() as session:
        for row in session.scalars(query):
            out[row.output_name] = StoredSpec(
                row.id, row.output_name, row.spec, row.principal, row.api_key_id, row.created_at
            )
    return out


def scheduled_specs(reg: Registry) -> list[StoredSpec]:
    """The stored specs that carry a `schedule` (cron), by output name."""
    return sorted((s for s in newest_specs(reg).values() if s.spec.get("schedule")), key=lambda s: s.name)


def stored_spec_of(reg: Registry, name: str) -> StoredSpec | None:
    return newest_specs(reg, name).get(name)
