"""Reads the web catalog needs beyond the REST views: aliases of listed rows, metrics beside the
parents' metrics, the run that made a version, small immutable files, and web-session key checks."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from threading import Lock
from typing import Any

from pydantic import BaseModel as Model
from sqlalchemy import select, tuple_

from registry.catalog import models as m
from registry.catalog.prepared.core import CoreReads
from registry.errors import IntegrityError, NotFound, StoreError
from registry.refs import Ref
from registry.service.access.policy import readable
from registry.service.catalog.lineage import walk
from registry.service.catalog.resolve import aliases_of, resolve_version
from registry.service.compositions.reads import CompositionView
from registry.service.context import Registry
from registry.store import adapter_prefix
from registry.views import LineageGraph, VersionView


class MetricRow(Model):
    name: str  # evaluation name (e.g. math-ppl)
    metric: str  # perplexity | accuracy
    value: float
    parents: dict[str, float]  # parent label (name@version) -> its value on the same evaluation


class VersionDetails(Model):
    """One version page: the version, its adapter's descriptive fields, how it came to be."""

    version: VersionView
    task: str | None
    tags: dict[str, str]
    description: str | None
    composition_id: str | None  # the run that registered it
    parents: list[tuple[str, str, float]]  # (name@version, operator, weight)
    metrics: list[MetricRow]


def aliases_by_adapter(reg: Registry, names: list[str]) -> dict[str, dict[str, int]]:
    """`ns/name` -> {alias: version} for a page of listed adapters, in one query."""
    pairs = [tuple(n.split("/", 1)) for n in names]
    if not pairs:
        return {}
    with reg.sessions() as session:
        rows = session.execute(
            select(m.Adapter.namespace, m.Adapter.name, m.Alias.alias, m.AdapterVersion.version)
            .join(m.Alias, m.Alias.adapter_id == m.Adapter.id)
            .join(m.AdapterVersion, m.AdapterVersion.id == m.Alias.version_id)
            .where(
                tuple_(m.Adapter.namespace, m.Adapter.name).in_(pairs),
                readable(reg.acting, m.Adapter.namespace),
            )
        ).all()
    out: dict[str, dict[str, int]] = {}
    for ns, name, alias, version in rows:
        out.setdefault(f"{ns}/{name}", {})[alias] = version
    return out


def _parent_order(parent: tuple[str, str, float]) -> tuple[bool, str, int]:
    name, _, version = parent[0].rpartition("@")
    return (not name, name or parent[0], int(version) if name else 0)


def version_details(reg: Registry, ref: Ref | str) -> VersionDetails:
    """The version, parents with operator and weight, the producing run, and each evaluation beside
    the parents' values on the same evaluation: one session, a handful of indexed queries."""
    with reg.sessions() as session:
        row = resolve_version(session, ref, access=reg.acting)
        view = VersionView.of(row, aliases_of(session, row))
        adapter = row.adapter
        parent_rows = session.execute(
            select(m.Adapter.namespace, m.Adapter.name, m.AdapterVersion.version, m.AdapterVersion.id)
            .add_columns(
                m.AdapterVersion.sha256,
                readable(reg.acting, m.Adapter.namespace).label("visible"),
                m.LineageEdge.operator,
                m.LineageEdge.weight,
                m.LineageEdge.composition_id,
            )
            .join(m.AdapterVersion, m.AdapterVersion.id == m.LineageEdge.parent_version_id)
            .join(m.Adapter, m.Adapter.id == m.AdapterVersion.adapter_id)
            .where(m.LineageEdge.child_version_id == row.id)
        ).all()
        # A parent in a namespace the reader cannot see is its digest only, without its metrics.
        labels = {
            vid: f"{ns}/{name}@{ver}" if visible else f"sha256:{sha}"
            for ns, name, ver, vid, sha, visible, *_ in parent_rows
        }
        seen = [vid for ns, name, ver, vid, sha, visible, *_ in parent_rows if visible]
        made_by = session.scalar(
            select(m.Composition.id)
            .where(m.Composition.output_version_id == row.id)
            .order_by(m.Composition.created_at)
            .limit(1)
        ) or next((c for *_, c in parent_rows if c), None)
        evals = session.execute(
            select(
                m.Evaluation.version_id,
                m.Evaluation.name,
                m.Evaluation.metric,
                m.Evaluation.dataset_sha256,
                m.Evaluation.value,
            )
            .where(m.Evaluation.version_id.in_([row.id, *seen]))
            .order_by(m.Evaluation.id)  # the newest value of a (version, evaluation) wins below
        ).all()
    # A parent's value sits beside the version's only if measured the same way: same evaluation
    # name, metric and dataset digest (the flow's own cache key for parents' metrics).
    own: dict[str, tuple[str, str | None, float]] = {}
    theirs: dict[tuple[str, str, str | None], dict[str, float]] = {}
    for vid, name, metric, dataset, value in evals:
        if vid == row.id:
            own[name] = (metric, dataset, value)
        else:
            theirs.setdefault((name, metric, dataset), {})[labels[vid]] = value
    metrics = [
        MetricRow(name=name, metric=metric, value=value, parents=theirs.get((name, metric, dataset), {}))
        for name, (metric, dataset, value) in sorted(own.items())
    ]
    return VersionDetails(
        version=view,
        task=adapter.task,
        tags={t.key: t.value for t in adapter.tags},
        description=adapter.description,
        composition_id=made_by,
        # Visible parents by name, then hidden ones by digest (their names must not order anything).
        parents=sorted(
            ((labels[vid], op, w) for _ns, _n, _v, vid, _s, _vis, op, w, _c in parent_rows),
            key=_parent_order,
        ),
        metrics=metrics,
    )


def lineage_around(
    reg: Registry, ref: Ref | str, depth: int
) -> tuple[VersionView, LineageGraph, LineageGraph]:
    """The version with its ancestors and its descendants, in one session."""
    with reg.sessions() as session:
        row = resolve_version(session, ref, access=reg.acting)
        return (
            VersionView.of(row, aliases_of(session, row)),
            walk(CoreReads(session), row, "up", depth, reg.acting),
            walk(CoreReads(session), row, "down", depth, reg.acting),
        )


class _TextCache:
    """Small files of versions by digest: content-addressed, so a cached text never goes stale."""

    def __init__(self, size: int = 256) -> None:
        self.items: OrderedDict[str, str] = OrderedDict()
        self.size = size
        self.lock = Lock()

    def get(self, digest: str) -> str | None:
        with self.lock:
            if digest in self.items:
                self.items.move_to_end(digest)
                return self.items[digest]
        return None

    def put(self, digest: str, text: str) -> None:
        with self.lock:
            self.items[digest] = text
            while len(self.items) > self.size:
                self.items.popitem(last=False)


_texts = _TextCache()
MAX_TEXT_BYTES = 512 * 1024  # model cards and provenance records are a few kB; refuse to page in more


def read_version_text(reg: Registry, version: VersionView, filename: str) -> str | None:
    """A small text file of a version (README.md, provenance.json), checked against its sha256.

    None when the version has no such file, it is larger than MAX_TEXT_BYTES, or the store cannot
    serve it (the page then says so instead of failing).
    """
    entry = version.files.get(filename)
    if not entry or int(entry.get("size", 0)) > MAX_TEXT_BYTES:
        return None
    digest = str(entry["sha256"])
    cached = _texts.get(digest)
    if cached is not None:
        return cached
    namespace, name = version.name.split("/", 1)
    key = f"{adapter_prefix(namespace, name, version.sha256)}/{filename}"
    data = bytearray()
    try:
        for chunk in reg.store.open_stream(key):
            data += chunk
            if len(data) > MAX_TEXT_BYTES:
                return None
    except (StoreError, OSError):
        return None
    if hashlib.sha256(data).hexdigest() != digest:
        raise IntegrityError(f"{version.name}@{version.version}/{filename}: stored bytes do not match sha256")
    text = data.decode("utf-8", errors="replace")
    _texts.put(digest, text)
    return text


class GateResult(Model):
    gate: dict[str, Any]  # as the spec wrote it
    state: str  # passed | failed | not checked
    detail: str | None = None  # the failure line, as the flow reported it


def gate_results(reg: Registry, run: CompositionView) -> list[GateResult]:
    """Each gate of a finished run, re-checked with the flow's own `check_gates` on the run's metrics
    and the inputs' recorded evaluations; `not checked` while running or when a value is missing."""
    from registry.evaluation.gates import check_gates
    from registry.spec import GateSpec

    gates = run.spec.get("gate") or []
    if run.status not in ("succeeded", "rejected") or not run.metrics:
        return [GateResult(gate=g, state="not checked") for g in gates]
    metric_of = {e["name"]: e["metric"] for e in run.spec.get("evaluate") or []}
    parents: dict[str, dict[str, float]] = {}
    with reg.sessions() as session:
        for item in run.inputs:
            try:
                version = resolve_version(session, f"{item.name}@{item.version}", access=reg.acting)
            except NotFound:
                continue  # deleted since; its regression gate shows as not checked
            for name, value in session.execute(
                select(m.Evaluation.name, m.Evaluation.value)
                .where(m.Evaluation.version_id == version.id)
                .order_by(m.Evaluation.id)
            ):
                parents.setdefault(item.name, {})[name] = value
    results = []
    for raw in gates:
        try:
            failures = check_gates([GateSpec.model_validate(raw)], run.metrics, metric_of, parents)
        except (KeyError, ValueError):
            results.append(GateResult(gate=raw, state="not checked"))
            continue
        results.append(
            GateResult(gate=raw, state="failed" if failures else "passed", detail="; ".join(failures) or None)
        )
    return results
