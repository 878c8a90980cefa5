"""The method table: one declaration per method, read by the spec, the checks, the composers, the
CLI, the REST API and docs/methods.md."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from registry.compose import compose
from registry.compose.base import get_composer
from registry.compose.methods import (
    RANK_RULES,
    DuplicateMethod,
    Method,
    Param,
    all_methods,
    get_method,
    register_method,
)
from registry.errors import InvalidInput
from registry.pem import read_adapter
from registry.spec import load_spec
from tests.compose_helpers import assert_close, library, lora_deltas
from tests.test_api_common import Api, api_fixture  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]


def _doc_rows() -> list[list[str]]:
    text = (ROOT / "docs" / "methods.md").read_text()
    section = text.split("## The method table", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| `")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_docs_list_exactly_the_tables_methods_and_parameters():
    rows = _doc_rows()
    builtin = [m for m in all_methods() if m.provider == "pemreg"]  # plugins document their own
    assert [r[0] for r in rows] == [f"`{m.name}`" for m in builtin]
    for row, method in zip(rows, builtin, strict=True):
        assert row[1] == ", ".join(method.pem_types), method.name
        assert row[2] == method.space, method.name
        params = [p.strip() for p in row[3].split(";")] if row[3] != "none" else []
        # each parameter by name, then its type, range or choices and default as declared
        named = [re.match(r"`(?:params\.)?(\w+)`", p).group(1) for p in params]
        assert named == [p.name for p in method.params]
        for text, param in zip(params, method.params, strict=True):
            assert f" {param.type} " in text, (method.name, text)
            default = "required" if param.required else f"default {param.default_doc or param.default}"
            assert text.endswith(default), (method.name, text)
            for choice in param.choices:
                assert choice in text, (method.name, text)
        assert row[4] == RANK_RULES[method.output_rank], method.name


def test_a_duplicate_name_is_refused():
    with pytest.raises(DuplicateMethod, match="ties"):
        register_method(Method("ties", ("lora",), "dense", "rank"))
    assert get_method("ties").provider == "pemreg"


def test_every_declared_pem_type_has_a_rule_and_no_rule_is_undeclared():
    for pem_type in ("lora", "ia3"):
        declared = {m.name for m in all_methods() if pem_type in m.pem_types}
        assert get_composer(pem_type).rules() == declared, pem_type


@pytest.fixture
def lora_only_method(monkeypatch):
    """A table entry for LoRA only (a copy of delta_svd's rule is enough to be dispatched)."""
    import registry.compose.lora as lora
    from registry.compose import methods

    method = Method(
        "svd_lora_only", ("lora",), "factor", "rank", (Param("rank", "int", exclusive_minimum=0),)
    )
    monkeypatch.setitem(methods._REGISTRY, method.name, method)
    monkeypatch.setitem(lora.FACTOR_RULES, method.name, lora.FACTOR_RULES["delta_svd"])
    return method


def test_a_method_for_another_pem_type_is_refused_naming_method(lora_only_method):
    lib = library()
    ia3 = [read_adapter(lib["i1"]), read_adapter(lib["i2"])]
    with pytest.raises(InvalidInput, match=r"supports PEM types lora, not ia3") as exc:
        compose(ia3, [1.0, 1.0], lora_only_method.name)
    assert exc.value.field == "method"
    lora = [read_adapter(lib["l1"]), read_adapter(lib["l2"])]
    assert compose(lora, [1.0, 1.0], lora_only_method.name).adapter.metadata()["r"] > 0


def test_engine_checks_parameters_from_the_declaration():
    lib = library()
    pair = [read_adapter(lib["l1"]), read_adapter(lib["l2"])]
    with pytest.raises(InvalidInput, match=r"ties needs density in \(0, 1\], got 1.5") as exc:
        compose(pair, [1.0, 1.0], "ties", density=1.5)
    assert exc.value.field == "density"
    with pytest.raises(InvalidInput, match="majority_sign must be one of total, frequency") as exc:
        compose(pair, [1.0, 1.0], "dare_ties", density=0.5, majority_sign="most")
    assert exc.value.field == "majority_sign"
    with pytest.raises(InvalidInput, match="unknown method 'slerp'") as exc:
        compose(pair, [1.0, 1.0], "slerp")
    assert exc.value.field == "method"


def test_spec_rules_come_from_the_table():
    with pytest.raises(InvalidInput, match="method magnitude_prune needs density"):
        load_spec("name: acme/x\nexpression: acme/a\nmethod: magnitude_prune\n")
    takers = ", ".join(m.name for m in all_methods() if m.param("density"))
    with pytest.raises(InvalidInput, match=re.escape(f"density applies to {takers}, not delta_svd")):
        load_spec("name: acme/x\nexpression: acme/a\nmethod: delta_svd\ndensity: 0.5\n")
    spec = load_spec("name: acme/x\nexpression: acme/a\nmethod: core_merge\ndensity: 0.5\nrank: 4\n")
    assert spec.method == "core_merge" and spec.rank == 4


def test_cli_methods_list_json_is_the_table(monkeypatch, tmp_path):
    from api.cli.main import build

    monkeypatch.setenv("PEMREG_HOME", str(tmp_path))
    result = CliRunner().invoke(build("methods"), ["methods", "list", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert [m["name"] for m in listed] == [m.name for m in all_methods()]
    ties = next(m for m in listed if m["name"] == "ties")
    assert ties["provider"] == "pemreg" and ties["space"] == "dense"
    assert [p["name"] for p in ties["params"]] == ["density", "majority_sign", "rank"]
    text = CliRunner().invoke(build("methods"), ["methods", "list"])
    assert text.exit_code == 0 and "core_merge" in text.output


def test_get_v1_methods_is_the_table_for_a_reader(api):
    assert api.client.get("/v1/methods").status_code == 401
    answer = api.client.get("/v1/methods", headers=api.h("reader"))
    assert answer.status_code == 200
    assert [m["name"] for m in answer.json()] == [m.name for m in all_methods()]
    core = next(m for m in answer.json() if m["name"] == "core_merge")
    density = next(p for p in core["params"] if p["name"] == "density")
    assert density["required"] and density["exclusive_minimum"] == 0 and density["maximum"] == 1


@pytest.fixture
def scaled_sum(monkeypatch):
    """A dense method declared with a `params:` parameter: `factor * sum_i w_i D_i`."""
    from registry.compose import dense, methods

    factor = Param("factor", "float", default=1.0, minimum=0, where="params")
    method = Method("scaled_sum", ("lora", "ia3"), "dense", "rank", (factor, methods.RANK))

    def rule(deltas, entries, params, path, norms):
        total = sum(e.weight * d for e, d in zip(entries, deltas(), strict=True))
        return params.value("factor") * total, {}

    monkeypatch.setitem(methods._REGISTRY, method.name, method)
    monkeypatch.setitem(dense.DENSE_RULES, method.name, rule)
    return method


def test_a_declared_params_parameter_is_checked_used_and_recorded(scaled_sum):
    lib = library()
    names, weights = ["l1", "l2"], [0.7, -0.4]
    pair = [read_adapter(lib[n]) for n in names]
    result = compose(pair, weights, "scaled_sum", rank=32, method_params={"factor": 2.5})
    assert result.params["factor"] == 2.5
    deltas = [lora_deltas(lib[n]) for n in names]
    for path, m in result.adapter.modules.items():
        expected = 2.5 * sum(w * d[path] for w, d in zip(weights, deltas, strict=True))
        assert_close(m.scale * (m.B.double() @ m.A.double()), expected, 1e-4)
    assert compose(pair, weights, "scaled_sum").params["factor"] == 1.0  # the declared default
    ia3 = compose([read_adapter(lib["i1"]), read_adapter(lib["i2"])], [1.0, 1.0], "scaled_sum")
    assert ia3.params["factor"] == 1.0
    with pytest.raises(InvalidInput, match=r"params.factor must be >= 0, got -1") as exc:
        compose(pair, weights, "scaled_sum", method_params={"factor": -1})
    assert exc.value.field == "params.factor"
    with pytest.raises(InvalidInput, match=r"takes no parameter 'gamma' \(params: factor\)") as exc:
        compose(pair, weights, "scaled_sum", method_params={"gamma": 1})
    assert exc.value.field == "params.gamma"


def test_spec_params_of_a_builtin_method_are_refused_naming_the_key():
    with pytest.raises(InvalidInput, match=r"^params\.gamma \(line 5\): method ties takes no parameter"):
        load_spec("name: acme/x\nexpression: acme/a\nmethod: ties\ndensity: 0.5\nparams: {gamma: 0.1}\n")
    spec = load_spec("name: acme/x\nexpression: acme/a\n")
    assert "params" not in spec.canonical()  # older specs keep their cache key
