"""Typed records a composition run writes: its evaluations and the run part of provenance.json.

Vocabulary: `composition_id` is the run id (UUID); `cache_key` is the content hash of canonical spec +
input digests + engine version. Nothing here calls the hash an id.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel as Model

from registry.views import SearchRecord


class EvaluationRecord(Model):
    name: str
    metric: str
    dataset: str  # URI
    dataset_sha256: str
    value: float


class RunInfo(Model):
    flow_run_id: str | None
    deployment: str | None
    trigger: str
    principal: str
    started: str
    finished: str
    cache_hit: bool = False
    attempt: int = 1


class InputRecord(Model):
    name: str
    version: int
    sha256: str
    weight: float
    ref: str


class CompositionProvenance(Model):
    """The composition-specific fields of provenance.json (merged beside subject/environment)."""

    composition_id: str
    cache_key: str
    spec: dict[str, Any]
    inputs: list[InputRecord]
    base_model: str
    method: dict[str, Any]
    interference: dict[str, Any]
    evaluations: list[EvaluationRecord]
    parent_evaluations: dict[str, dict[str, float]]
    search: SearchRecord | None
    run: RunInfo

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
