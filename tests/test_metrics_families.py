"""The metric families in one place: every family the contract lists is defined (and exported by the
exposition), and the Grafana dashboard in docs/ reads only families that exist, by their labels."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from registry.service.admin import metrics

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = {
    "pemreg_http_requests_total": {"method", "route", "status"},
    "pemreg_http_request_duration_seconds": {"method", "route"},
    "pemreg_compositions_total": {"status"},
    "pemreg_composition_duration_seconds": {"status"},
    "pemreg_runs_reconciled_total": {"outcome"},
    "pemreg_webhook_deliveries_total": {"outcome"},
    "pemreg_webhook_outbox_pending": set(),
    "pemreg_gc_objects_deleted_total": set(),
}
SUFFIXES = ("_bucket", "_count", "_sum", "_created")


def _exported() -> dict[str, set[str]]:
    metrics.enable()
    metrics.http_request("GET", "/healthz", 200, 0.01)
    metrics.composition_ended("succeeded", 3.0)
    body, content_type = metrics.exposition(lambda: 7)
    assert content_type.startswith("text/plain")
    found: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            name = sample.name
            for suffix in SUFFIXES:
                if name.endswith(suffix) and name.removesuffix(suffix) in CONTRACT:
                    name = name.removesuffix(suffix)
            found.setdefault(name, set()).update(k for k in sample.labels if k != "le")
            if sample.name == "pemreg_webhook_outbox_pending":
                assert sample.value == 7
    return found


def test_every_contract_family_is_exported_with_its_labels() -> None:
    found = _exported()
    for name, labels in CONTRACT.items():
        assert name in found, name
        assert found[name] == labels, (name, found[name])


def test_the_dashboard_reads_only_families_that_exist() -> None:
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 10
    used = {re.sub(r"_(bucket|count|sum)$", "", n) for e in exprs for n in re.findall(r"pemreg_[a-z_]+", e)}
    assert used == set(CONTRACT)  # every family is on the dashboard, and nothing else
    for expr in exprs:
        for label in re.findall(r"by \(([^)]*)\)", expr):
            for name in (x.strip() for x in label.split(",")):
                assert name == "le" or any(name in labels for labels in CONTRACT.values()), (name, expr)


def test_worker_metrics_port_serves_the_same_exposition() -> None:
    import httpx

    from tests.live_server import free_port

    port = free_port()
    metrics.serve_http(port, "127.0.0.1", lambda: 3)  # what `pemreg worker --metrics-port` starts
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    names = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    assert "pemreg_webhook_outbox_pending" in names and "pemreg_compositions_total" in names
