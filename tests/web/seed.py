"""A small catalog for the web tests, made through the product's own service layer.

Two peft-made LoRAs, a composed version of them (composed by the real engine, registered by the same
`register_output` the compose flow calls, so lineage edges, the composition record, model card and
provenance are the product's own), and an adapter whose description and tags carry XSS payloads.
Skipped: Prefect (the flow's orchestration is tested elsewhere) and model evaluation: the metrics
recorded here are fixed numbers, so the pages show what the catalog holds, not a measurement.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from registry import service
from registry.compose.engine import compose
from registry.compose.interference import interference_report
from registry.pem.io import read_adapter, write_adapter
from registry.service import Registry
from registry.service.admin.keys import create_key
from registry.service.catalog.evaluations import record
from registry.service.compositions import runs
from registry.service.compositions.inputs import resolve_inputs
from registry.service.compositions.output import register_output
from registry.service.compositions.records import (
    CompositionProvenance,
    EvaluationRecord,
    InputRecord,
    RunInfo,
)
from registry.service.compositions.status import RunStatus
from registry.spec import load_spec
from tests.factories import make_lora

XSS_DESCRIPTION = '<script>window.__xss="desc"</script><img src=x onerror="window.__xss=\'img\'">'
# The author's own model card: raw HTML, an event handler and a javascript: link in Markdown.
XSS_CARD = (
    "# Probe\n\n<script>window.__xss='card'</script>\n\n<img src=x onerror=\"window.__xss='cardimg'\">\n\n"
    "[click](javascript:window.__xss='link')\n"
)
XSS_TAG = '<script>window.__xss="tag"</script>'
XSS_TAG_KEY = "note<script>alert(1)</script><b onmouseover>x</b>"
SPEC = """\
name: acme/math-medicine
description: math + medicine skills, composed for the web tests
method: linear
expression: "0.7 * acme/math + 0.3 * acme/medicine"
evaluate:
  - {name: math-ppl, metric: perplexity, dataset: "file:///data/math.jsonl"}
gate:
  - {evaluation: math-ppl, max: 12.0}
  - {evaluation: math-ppl, max_regression_vs: acme/math, by: 0.2}
output: {kind: adapter, aliases: [candidate]}
"""


@dataclass
class Seeded:
    reader_key: str
    writer_key: str
    composed: str  # name@version
    composition_id: str
    weights_sha256: str  # of the composed version's adapter_model.safetensors
    math_sha256: str


def seed_catalog(reg: Registry, work: Path) -> Seeded:
    math_dir = make_lora(work / "math", seed=11)
    med_dir = make_lora(work / "medicine", seed=12)
    math, _ = service.register_adapter(
        reg, math_dir, "acme/math", task="math", tags={"tier": "gold"}, description="Arithmetic skills"
    )
    service.register_adapter(
        reg, med_dir, "acme/medicine", task="medicine", tags={"tier": "silver"}, description="Clinical notes"
    )
    evil = make_lora(work / "evil", seed=13)
    (evil / "README.md").write_text(XSS_CARD)
    service.register_adapter(
        reg,
        evil,
        "evil/probe",
        task="xss",
        tags={"payload": XSS_TAG, XSS_TAG_KEY: "v"},
        description=XSS_DESCRIPTION,
    )
    spec = load_spec(SPEC)
    inputs = resolve_inputs(reg, spec)
    run = runs.create(reg, spec, inputs, "api")
    runs.transition(reg, run.id, RunStatus.RUNNING, flow_run_id="00000000-0000-4000-8000-000000000001")
    adapters = [read_adapter(d) for d in (math_dir, med_dir)]
    weights = [i.weight for i in inputs]
    interference = interference_report(adapters, weights, names=[i.label for i in inputs]).to_dict()
    runs.record(reg, run.id, interference=interference)
    result = compose(adapters, weights, spec.method)
    with tempfile.TemporaryDirectory(prefix="web-seed-") as tmp:
        out = write_adapter(result.adapter, Path(tmp) / "out")
        metrics = {"math-ppl": 7.25}
        evaluation = EvaluationRecord(
            name="math-ppl",
            metric="perplexity",
            dataset="file:///data/math.jsonl",
            dataset_sha256="d" * 64,
            value=7.25,
        )
        provenance = CompositionProvenance(
            composition_id=run.id,
            cache_key=run.cache_key or "",
            spec=spec.canonical(),
            inputs=[
                InputRecord(name=i.name, version=i.version, sha256=i.sha256, weight=i.weight, ref=i.ref)
                for i in inputs
            ],
            base_model=inputs[0].base_model,
            method={"name": spec.method, **result.report()},
            interference=interference,
            evaluations=[evaluation],
            parent_evaluations={"acme/math@1": {"math-ppl": 6.5}, "acme/medicine@1": {"math-ppl": 11.0}},
            search=None,
            run=RunInfo(
                flow_run_id="00000000-0000-4000-8000-000000000001",
                deployment=None,
                trigger="api",
                principal=run.principal,
                started="2026-01-01T00:00:00+00:00",
                finished="2026-01-01T00:00:05+00:00",
            ),
        )
        done = register_output(
            reg, run, out, spec, inputs, evaluations=[evaluation], metrics=metrics, provenance=provenance
        )
    for parent, value in (("acme/math@1", 6.5), ("acme/medicine@1", 11.0)):
        record(
            reg,
            parent,
            name="math-ppl",
            metric="perplexity",
            dataset_uri="file:///data/math.jsonl",
            dataset_sha256="d" * 64,
            value=value,
            composition_id=run.id,
        )
    assert done.output is not None
    return Seeded(
        reader_key=create_key(reg, "web-reader", "reader"),
        writer_key=create_key(reg, "web-writer", "writer"),
        composed=f"{done.output.name}@{done.output.version}",
        composition_id=run.id,
        weights_sha256=done.output.sha256,
        math_sha256=math.sha256,
    )
