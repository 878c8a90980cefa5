"""`pemreg demo` (quick run): the paper's effects hold, and every reported number is recomputed here
from the registered artifacts (download, evaluate with `Evaluator`, compare)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from registry.catalog.migrate import upgrade
from registry.compose import interference_report
from registry.demo.report import claims
from registry.demo.scenarios import Row
from registry.evaluation import EvalRequest, Evaluator, load_dataset
from registry.pem import read_adapter
from registry.service import Registry, download_version, lineage
from registry.settings import Settings


@pytest.fixture(scope="module")
def demo_run(
    tmp_path_factory: pytest.TempPathFactory, prefect_harness: None
) -> tuple[Registry, dict, list[str]]:
    from flows.runners import install
    from registry.demo import run_demo

    tmp = tmp_path_factory.mktemp("demo")
    settings = Settings(
        home=tmp / "home",
        database_url=f"sqlite:///{tmp / 'reg.db'}",
        artifact_store=(tmp / "artifacts").as_uri(),
        principal="tester",
    )
    upgrade(settings.resolved_database_url)
    reg = Registry(settings)
    reg.store.ensure_ready()
    install(settings, "in-process")  # what `pemreg demo` registers: runs.start runs flows in this process
    said: list[str] = []
    result = run_demo(reg, tmp / "work", said.append, quick=True, out_dir=tmp / "out")
    assert result.report_path.exists() and result.plot_path.stat().st_size > 1000
    return reg, json.loads(result.json_path.read_text()), said


def _row(report: dict, prefix: str) -> dict:
    return next(r for r in report["rows"] if r["ref"] and r["ref"].startswith(prefix))


def test_distribution_generalization_beats_the_worse_parent(
    demo_run: tuple[Registry, dict, list[str]],
) -> None:
    _, report, _ = demo_run
    merged = _row(report, "demo/weather-merged@")["perplexity"]["weather"]
    parents = [_row(report, f"demo/weather-{h}@")["perplexity"]["weather"] for h in ("a", "b")]
    assert merged < max(parents)


def test_unlearning_moves_the_target_more_than_twice_any_other(
    demo_run: tuple[Registry, dict, list[str]],
) -> None:
    reg, report, _ = demo_run
    base = report["rows"][0]["perplexity"]
    row = _row(report, "demo/forget-sports@")
    assert row["status"] == "succeeded"
    edges = lineage(reg, row["ref"], depth=1).edges
    assert len(edges) == 1 and edges[0].weight < 0  # the lambda the search picked
    rel = {d: row["perplexity"][d] / base[d] - 1 for d in report["domains"]}
    others = max(abs(v) for d, v in rel.items() if d != "sports")
    assert rel["sports"] > 0
    assert rel["sports"] > 2 * others


def test_every_reported_number_is_recomputed_from_registered_artifacts(
    demo_run: tuple[Registry, dict, list[str]], tmp_path: Path
) -> None:
    reg, report, said = demo_run
    domains = report["domains"]
    data_dir = Path(report["data_dir"])
    requests = [
        EvalRequest(d, "perplexity", load_dataset(str(data_dir / f"{d}-test.jsonl"), "perplexity", None))
        for d in domains
    ]
    base_version = report["base_model"]
    from registry.service.registration.base_reads import list_base_models

    base = next(b for b in list_base_models(reg) if f"{b.name}@{b.revision}" == base_version)
    evaluator = Evaluator(Path(base.source))
    printed = "\n".join(said)
    md = Path(report["data_dir"]).parent.joinpath("report.md").read_text()
    checked = 0
    rows = []
    for row in report["rows"]:
        if row["ref"] is None:
            assert row["kind"] == "base"
            fresh = evaluator.evaluate(None, requests)
        else:
            folder = tmp_path / row["ref"].replace("/", "_").replace("@", "_")
            download_version(reg, row["ref"], folder)
            fresh = evaluator.evaluate(folder, requests)
        # the row as printed (and in report.md): its per-domain cells are exactly these values
        line = next(x for x in said if x.startswith(f"| {row['label']} |"))
        assert line in md
        cells = [c.strip() for c in line.strip("|").split("|")][3 : 3 + len(domains)]
        for d, cell in zip(domains, cells, strict=True):
            assert row["perplexity"][d] == pytest.approx(fresh[d], rel=1e-5), (row["label"], d)
            assert float(cell.split()[0]) == pytest.approx(fresh[d], abs=6e-4), (row["label"], d)
            checked += 1
        rows.append(_row_with(row, fresh))
    assert checked == len(report["rows"]) * len(domains)
    recomputed: list[dict] = []
    for item in report["interference"]:
        folders = []
        for ref in (item["a"], item["b"]):
            folder = tmp_path / ("i_" + ref.replace("/", "_").replace("@", "_"))
            if not folder.exists():
                download_version(reg, ref, folder)
            folders.append(read_adapter(folder))
        pair = interference_report(folders).to_dict()["pairs"][0]
        assert item["rms_cosine"] == pytest.approx(pair["rms_cosine"], rel=1e-4, abs=1e-6)
        assert f"{pair['rms_cosine']:.4f}" in printed
        recomputed.append({**item, "rms_cosine": pair["rms_cosine"]})
    # the checklist under the table is derived from these recomputed numbers only
    checks = claims(SimpleNamespace(rows=rows, interference=recomputed))
    assert checks
    for line in checks:
        assert f"- {line}" in said and f"- {line}" in md


def _row_with(row: dict, ppl: dict[str, float]) -> Row:
    return Row(
        label=row["label"],
        ref=row["ref"],
        kind=row["kind"],
        scenario=row["scenario"],
        detail=row["detail"],
        ppl={d: ppl[d] for d in row["perplexity"]},
        status=row["status"],
        inputs=[(ref, w) for ref, w in row["inputs"]],
    )
