"""Decoding-time composition through the compose flow (real Prefect, catalog and store): an ensemble
registers a recipe (no weights), compare_decoding reports weight space vs decoding time, and
core_merge `importance` is calibrated on the named evaluation's dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from transformers import AutoModelForCausalLM

from flows.compose import compose_flow
from registry import service
from registry.compose import compose
from registry.evaluation.calibration import activation_norms
from registry.evaluation.tokens import ByteTokenizer
from registry.hashing import sha256_bytes
from registry.pem import read_adapter
from registry.service.compositions import reads as compositions
from registry.service.compositions.ensemble import composition_serving, recipe_of
from registry.spec import load_spec
from tests.decoding_helpers import hand_perplexity
from tests.flow_fixtures import TEXTS, World


def _read(world: World, uri: str, name: str) -> bytes:
    prefix = uri.split("/ensembles/", 1)[1]
    return b"".join(world.reg.store.open_stream(f"ensembles/{prefix}/{name}"))


def _artifact(key: str) -> dict | list:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    assert found, key
    data = found[0].data
    return json.loads(data) if isinstance(data, str) and data.startswith("[") else data


def test_ensemble_registers_a_recipe_and_evaluates_combined_logits(world: World) -> None:
    spec = (
        f"name: t/ens\ndescription: a + b at decoding time\nexpression: '0.6 * t/a@1 - 0.3 * t/b'\n"
        f"output: {{kind: ensemble}}\nevaluate:\n"
        f"  - {{name: ppl, metric: perplexity, dataset: '{world.ppl_data}'}}\n"
        f"gate:\n  - {{evaluation: ppl, max_regression_vs: t/a, by: 10.0}}\n"
    )
    result = compose_flow(load_spec(spec).canonical())
    assert result["status"] == "succeeded", result
    assert result["output"] is None  # no adapter version: there are no weights
    expected = hand_perplexity(world.tmp / "base", [world.tmp / "a", world.tmp / "b"], [0.6, -0.3], TEXTS)
    assert result["metrics"]["ppl"] == pytest.approx(expected, rel=1e-5)

    pointer = compositions.get(world.reg, result["id"]).interference["ensemble"]
    raw = _read(world, pointer["uri"], "recipe.json")
    assert sha256_bytes(raw) == pointer["sha256"] == pointer["files"]["recipe.json"]["sha256"]
    recipe = json.loads(raw)
    versions = {n: service.get_version(world.reg, f"{n}@1") for n in ("t/a", "t/b")}
    assert recipe["formula"] == "logits = base + sum_i w_i (logits_i - base)"
    assert recipe["base_model"].startswith("tiny-llama")
    assert [(i["name"], i["version"], i["sha256"], i["weight"]) for i in recipe["inputs"]] == [
        ("t/a", 1, versions["t/a"].sha256, 0.6),
        ("t/b", 1, versions["t/b"].sha256, -0.3),
    ]
    card = _read(world, pointer["uri"], "README.md").decode()
    assert "t/a" in card and "+0.6" in card and "-0.3" in card and "ppl" in card
    prov = json.loads(_read(world, pointer["uri"], "provenance.json"))
    assert prov["recipe"] == recipe and prov["method"]["name"] == "ensemble"
    assert prov["evaluations"][0]["value"] == pytest.approx(expected, rel=1e-5)
    assert prov["run"]["flow_run_id"] == result["flow_run_id"]
    assert {s["name"] for s in prov["subject"]} == {"recipe.json", "README.md"}
    assert not service.list_adapters(world.reg, query="t/ens").items  # nothing registered as weights

    assert recipe_of(world.reg, result["id"]) == recipe
    serving = composition_serving(world.reg, result["id"])
    assert serving["formula"] == recipe["formula"] and len(serving["steps"]) >= 3
    assert [a["serving"]["vllm"]["lora_name"] for a in serving["adapters"]] == [
        f"t/a@{versions['t/a'].sha256[:8]}",
        f"t/b@{versions['t/b'].sha256[:8]}",
    ]
    assert [a["weight"] for a in serving["adapters"]] == [0.6, -0.3]


def test_compare_decoding_reports_interference_cost(world: World, tmp_path: Path) -> None:
    spec = (
        f"name: t/cmp\nmethod: delta_svd\nrank: 64\nexpression: '0.5 * t/a@1 + 0.5 * t/b'\n"
        f"compare_decoding: true\nevaluate:\n"
        f"  - {{name: ppl, metric: perplexity, dataset: '{world.ppl_data}'}}\n"
    )
    result = compose_flow(load_spec(spec).canonical())
    assert result["status"] == "succeeded", result
    decoding = result["interference"]["decoding"]
    [row] = decoding["evaluations"]
    expected = hand_perplexity(world.tmp / "base", [world.tmp / "a", world.tmp / "b"], [0.5, 0.5], TEXTS)
    assert row["evaluation"] == "ppl" and row["weight_space"] == result["metrics"]["ppl"]
    assert row["decoding_time"] == pytest.approx(expected, rel=1e-5)
    assert row["interference_cost"] == pytest.approx(row["weight_space"] - row["decoding_time"])
    # Weight-space and decoding-time sums differ (the softmax is not linear in the weights' effect).
    assert row["weight_space"] != pytest.approx(row["decoding_time"], rel=1e-9)

    out = tmp_path / "cmp"
    service.download_version(world.reg, "t/cmp@1", out)
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["interference"]["decoding"] == decoding
    table = _artifact("interference-cost-t-cmp")
    assert [r["evaluation"] for r in table] == ["ppl"]
    assert float(table[0]["interference_cost"]) == pytest.approx(row["interference_cost"])


def test_core_merge_importance_uses_calibration_of_the_named_evaluation(world: World, tmp_path: Path) -> None:
    spec = (
        f"name: t/core\nmethod: core_merge\ndensity: 0.3\nrank: 64\ncore_criterion: importance\n"
        f"calibration: ppl\nexpression: '0.5 * t/a@1 + 0.5 * t/b'\nevaluate:\n"
        f"  - {{name: ppl, metric: perplexity, dataset: '{world.ppl_data}'}}\n"
    )
    result = compose_flow(load_spec(spec).canonical())
    assert result["status"] == "succeeded", result
    pairs = result["interference"]["core_overlap"]
    assert [(p["i"], p["j"]) for p in pairs] == [(0, 1)] and 0.0 <= pairs[0]["rms_overlap"] <= 1.0

    # The same merge by the pure engine, with norms computed here from the base on the same texts.
    base = AutoModelForCausalLM.from_pretrained(world.tmp / "base").eval()
    inputs = [read_adapter(world.tmp / n) for n in ("a", "b")]
    paths = sorted({p for a in inputs for p in a.modules})
    norms = activation_norms(base, ByteTokenizer(128), TEXTS, paths, max_len=64)
    expected = compose(
        inputs,
        [0.5, 0.5],
        "core_merge",
        rank=64,
        density=0.3,
        core_criterion="importance",
        activation_norms=norms,
    )
    magnitude = compose(inputs, [0.5, 0.5], "core_merge", rank=64, density=0.3)
    out = tmp_path / "core"
    service.download_version(world.reg, "t/core@1", out)
    got = read_adapter(out)
    differs = False
    for path, module in expected.adapter.modules.items():
        actual = got.modules[path].scale * (got.modules[path].B.double() @ got.modules[path].A.double())
        torch.testing.assert_close(actual, module.B.double() @ module.A.double(), rtol=1e-4, atol=1e-6)
        mag = magnitude.adapter.modules[path]
        differs |= not torch.allclose(actual, mag.B.double() @ mag.A.double(), atol=1e-6)
    assert differs  # importance picked other cores than magnitude somewhere
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["method"]["params"]["core_criterion"] == "importance"
    assert prov["method"]["summary"]["core_overlap"] == pairs
    summary = _artifact("compose-t-core")
    assert "Core overlap" in summary and f"| t/a@1 / t/b@1 | {pairs[0]['rms_overlap']:.4f} |" in summary


def test_ia3_core_merge_with_compare_decoding(world: World) -> None:
    spec = (
        f"name: t/ij\nmethod: core_merge\ndensity: 0.5\nexpression: '0.8 * t/i + 0.6 * t/j'\n"
        f"compare_decoding: true\nevaluate:\n"
        f"  - {{name: ppl, metric: perplexity, dataset: '{world.ppl_data}'}}\n"
    )
    result = compose_flow(load_spec(spec).canonical())
    assert result["status"] == "succeeded", result
    [row] = result["interference"]["decoding"]["evaluations"]
    expected = hand_perplexity(world.tmp / "base", [world.tmp / "i", world.tmp / "j"], [0.8, 0.6], TEXTS)
    assert row["decoding_time"] == pytest.approx(expected, rel=1e-5)
    assert row["weight_space"] == result["metrics"]["ppl"]
    assert row["interference_cost"] == pytest.approx(row["weight_space"] - row["decoding_time"])
    assert [(p["i"], p["j"]) for p in result["interference"]["core_overlap"]] == [(0, 1)]
