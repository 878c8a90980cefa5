"""`pemreg base-models merge NAME INTO`: repair a catalog that holds one base under two identities.

Before base identity was taken from evidence (registry.base_evidence), an adapter whose config named
a relative path (`my-base`) could, over REST, register a base model named after that string. Merging
moves every adapter (and merged model) of the invented base to the real one and removes the invented
row, in one audited transaction. Refused when the two are recorded as different models (config
fingerprint, weights digest or architecture differ), or when an adapter's module shapes do not fit
the kept base's recorded config.
"""

from __future__ import annotations

from sqlalchemy import select, update

from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.errors import Conflict
from registry.service.catalog import audit
from registry.service.context import Registry
from registry.service.registration.base_models import require_base_model
from registry.service.registration.base_shapes import check_module_shapes, recorded_module_dims
from registry.views import BaseMerged


def _label(row: m.BaseModel) -> str:
    return f"{row.name}@{row.revision}"


def _differences(gone: m.BaseModel, kept: m.BaseModel) -> list[str]:
    found = []
    for field in ("sha256", "config_sha256", "architecture"):
        a, b = getattr(gone, field), getattr(kept, field)
        if a and b and a != b:
            found.append(field)
    return found


def merge_base_models(reg: Registry, label: str, into: str) -> BaseMerged:
    with transaction(reg.sessions) as session:
        gone = require_base_model(session, label)
        kept = require_base_model(session, into)
        if gone.id == kept.id:
            raise Conflict(f"into: {_label(kept)} is the base model being merged; name another")
        differ = _differences(gone, kept)
        if differ:
            raise Conflict(
                f"{_label(gone)} and {_label(kept)} are recorded as different models "
                f"({', '.join(differ)} differ); not merged"
            )
        adapters = session.scalars(
            select(m.Adapter)
            .where(m.Adapter.base_model_id == gone.id)
            .order_by(m.Adapter.namespace, m.Adapter.name)
        ).all()
        dims = recorded_module_dims(kept.config)
        if dims:
            for adapter in adapters:
                for version in session.scalars(
                    select(m.AdapterVersion).where(m.AdapterVersion.adapter_id == adapter.id)
                ):
                    shapes = (version.extra or {}).get("module_shapes") or {}
                    check_module_shapes(adapter.pem_type, shapes, dims, _label(kept))
        names = [a.full_name for a in adapters]
        session.execute(
            update(m.Adapter).where(m.Adapter.base_model_id == gone.id).values(base_model_id=kept.id)
        )
        merged = len(
            session.scalars(select(m.MergedModel.id).where(m.MergedModel.base_model_id == gone.id)).all()
        )
        session.execute(
            update(m.MergedModel).where(m.MergedModel.base_model_id == gone.id).values(base_model_id=kept.id)
        )
        gone_label = _label(gone)
        session.delete(gone)
        for subject in (f"base:{gone_label}", f"base:{_label(kept)}"):
            audit.record(
                session,
                reg.principal,
                "base_merge",
                subject[:256],
                merged=gone_label,
                into=_label(kept),
                adapters=names[:100],
                adapter_count=len(names),
            )
        return BaseMerged(merged=gone_label, into=_label(kept), adapters=names, merged_models=merged or 0)
