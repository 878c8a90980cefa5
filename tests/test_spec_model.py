"""Spec loading (YAML and JSON): every field of docs/spec.md, errors with field and line."""

from __future__ import annotations

import json
import textwrap

import pytest
import yaml

from registry.errors import InvalidInput
from registry.spec import CompositionSpec, Ref, load_spec

FULL = textwrap.dedent(
    """\
    name: acme/math-medicine
    description: math + medicine skills
    base_model: tiny-gpt2
    method: delta_svd
    rank: 16
    seed: 0
    expression: "0.5 * acme/math + 0.5 * acme/medicine - 0.3 * acme/toxic@2"
    evaluate:
      - {name: math-ppl, metric: perplexity, dataset: "s3://data/math_val.jsonl"}
      - {name: topic-acc, metric: accuracy, dataset: "file:///data/topic_val.jsonl"}
    gate:
      - {evaluation: math-ppl, max: 12.0}
      - {evaluation: math-ppl, max_regression_vs: acme/math, by: 0.05}
    search:
      strategy: grid
      weights: {acme/toxic: [-0.2, -0.4, -0.6]}
      objective: {evaluation: math-ppl, goal: minimize}
    output: {kind: adapter, aliases: [candidate]}
    schedule: "0 3 * * *"
    recompose: on_parent_update
    """
)


def test_full_yaml_example():
    spec = load_spec(FULL)
    assert isinstance(spec, CompositionSpec)
    assert spec.method == "delta_svd" and spec.rank == 16 and spec.output.aliases == ["candidate"]
    assert spec.weighted_refs()[-1] == (Ref("acme", "toxic", version=2), -0.3)
    assert spec.gate[1].by == 0.05 and spec.search and spec.search.strategy == "grid"
    assert spec.schedule == "0 3 * * *" and spec.recompose == "on_parent_update"


def test_json_is_the_same_schema(tmp_path):
    data = yaml.safe_load(FULL)
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(data, indent=2))
    assert load_spec(path) == load_spec(FULL) == load_spec(str(path))


def test_inputs_form_and_canonical():
    spec = load_spec(
        "name: acme/out\nmethod: ties\ndensity: 0.5\ninputs:\n"
        "  - {adapter: acme/a, version: 3, weight: 0.5}\n"
        "  - {adapter: acme/b, version: prod, weight: -1}\n"
        "  - {adapter: acme/c, weight: 1}\n"
        "  - {adapter: acme/a, version: 3, weight: 0.25}\n"
    )
    assert spec.weighted_refs() == [
        (Ref("acme", "a", version=3), 0.75),
        (Ref("acme", "b", alias="prod"), -1.0),
        (Ref("acme", "c"), 1.0),
    ]
    canonical = spec.canonical()
    assert canonical["majority_sign"] == "total" and "expression" not in canonical
    assert load_spec(spec.canonical_json()).canonical_json() == spec.canonical_json()


@pytest.mark.parametrize(
    ("text", "field", "line", "fragment"),
    [
        ("name: acme/x\nexpression: acme/a\nmethod: average\n", "method", 3, "Input should be"),
        ("name: Acme/X\nexpression: acme/a\n", "name", 1, "pattern"),
        ("name: acme/x\n\nexpression: acme/a +\n", "expression", 3, "unexpected end"),
        ("name: acme/x\nexpression: acme/a\nrank: 0\nmethod: delta_svd\n", "rank", 3, "greater than 0"),
        ("name: acme/x\nexpression: acme/a\ncolour: red\n", "colour", 3, "unknown field"),
        ("name: acme/x\nexpression: acme/a\nmethod: ties\n", "density", 3, "needs density"),
        (
            "name: acme/x\nexpression: acme/a\nmethod: ties\ndensity: 1.5\n",
            "density",
            4,
            "less than or equal",
        ),
        ("name: acme/x\nexpression: acme/a\nrank: 4\n", "rank", 3, "rank applies to delta_svd"),
        ("name: acme/x\n", "expression", 1, "exactly one of"),
        (
            "name: acme/x\nexpression: acme/a\nevaluate:\n  - {name: p, metric: perplexity, dataset: d}\n"
            "gate:\n  - {evaluation: p, max: 3}\n  - {evaluation: q, max: 3}\n",
            "gate[1].evaluation",
            7,
            "unknown evaluation 'q'",
        ),
        (
            "name: acme/x\nexpression: acme/a\nevaluate:\n  - {name: p, metric: bleu, dataset: d}\n",
            "evaluate[0].metric",
            4,
            "Input should be",
        ),
        ("name: acme/x\nexpression: acme/a\ngate:\n  - {evaluation: p}\n", "gate[0]", 4, "needs max, min"),
        ("name: acme/x\nexpression: acme/a\nschedule: every day\n", "schedule", 3, "cron"),
        ("name: acme/x\nexpression: acme/a\noutput: {kind: zip}\n", "output.kind", 3, "Input should be"),
        (
            "name: acme/x\nexpression: acme/a\nevaluate:\n  - {name: p, metric: perplexity, dataset: d}\n"
            "search:\n  weights: {acme/zzz: [1]}\n  objective: {evaluation: p}\n",
            "search.weights.acme/zzz",
            6,
            "not an input",
        ),
        (
            "name: acme/x\ninputs:\n  - {adapter: acme/a, version: 0, weight: 1}\n",
            "inputs[0].version",
            3,
            "run from 1",
        ),
        ("name: acme/x\ninputs:\n  - {adapter: acme/a, weight: 0}\n", "inputs", 2, "every weight is 0"),
        ("name: acme/x\nexpression: acme/a\nrecompose: always\n", "recompose", 3, "Input should be"),
    ],
)
def test_errors_name_field_and_line(text, field, line, fragment):
    with pytest.raises(InvalidInput) as err:
        load_spec(text)
    assert err.value.field == field
    assert str(err.value).startswith(f"{field} (line {line}): ")
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_json_errors_have_lines_too():
    text = json.dumps({"name": "acme/x", "expression": "acme/a", "method": "nope"}, indent=2)
    with pytest.raises(InvalidInput, match=r"^method \(line 4\)"):
        load_spec(text)


@pytest.mark.parametrize(
    ("text", "fragment"), [("name: [unclosed\n", "not valid YAML at line"), ("- a\n", "mapping")]
)
def test_syntax_errors(text, fragment):
    with pytest.raises(InvalidInput, match=fragment):
        load_spec(text)


def test_missing_file():
    with pytest.raises(InvalidInput, match="spec file nowhere.yaml not found"):
        load_spec("nowhere.yaml")


def test_json_with_tabs_and_exponents():
    text = (
        '{\n\t"name": "acme/x",\n\t"expression": "acme/a",\n\t"method": "ties",\n'
        '\t"density": 5e-1,\n\t"rank": 0\n}'
    )
    with pytest.raises(InvalidInput, match=r"^rank \(line 6\): .*greater than 0"):
        load_spec(text)
    assert load_spec(text.replace(',\n\t"rank": 0', "")).density == 0.5


def test_bad_json():
    with pytest.raises(InvalidInput, match="not valid JSON at line 2"):
        load_spec('{"name": "acme/x",\n "expression": }')


SEARCHED = (
    "name: acme/x\nexpression: '0.5 * acme/a + 0.5 * acme/b'\n"
    "evaluate:\n  - {name: p, metric: perplexity, dataset: d}\n"
)


@pytest.mark.parametrize(
    ("extra", "field", "fragment"),
    [
        (
            "search:\n  methods: [linear, nope]\n  objective: {evaluation: p}\n",
            "search.methods[1]",
            "Input should be",
        ),
        (
            "search:\n  methods: [linear, linear]\n  objective: {evaluation: p}\n",
            "search.methods",
            "listed twice",
        ),
        (
            "search:\n  methods: [linear, ties]\n  objective: {evaluation: p}\n",
            "density",
            "ties in search.methods needs density",
        ),
        (
            "density: 0.5\nsearch:\n  methods: [linear, delta_svd]\n  objective: {evaluation: p}\n",
            "density",
            "none of search.methods",
        ),
        (
            "method: ties\ndensity: 0.5\nsearch:\n  methods: [linear, magnitude_prune]\n"
            "  objective: {evaluation: p}\n",
            "method",
            "not in search.methods",
        ),
        (
            "density: 0.3\nparams: {zeta: 2}\nsearch:\n  methods: [ties, breadcrumbs]\n"
            "  objective: {evaluation: p}\n",
            "params.zeta",
            "no method of search.methods",
        ),
        (
            "density: 0.3\nparams: {gamma: 2}\nsearch:\n  methods: [ties, breadcrumbs]\n"
            "  objective: {evaluation: p}\n",
            "params.gamma",
            "in [0, 1]",
        ),
        ("search:\n  scale: [0, 1]\n  objective: {evaluation: p}\n", "search.scale[0]", "greater than 0"),
        (
            "search:\n  objective: {evaluation: p}\n",
            "search.weights",
            "needs `weights`, `methods` or `scale`",
        ),
    ],
)
def test_search_methods_refusals_name_the_field(extra, field, fragment):
    with pytest.raises(InvalidInput) as err:
        load_spec(SEARCHED + extra)
    assert err.value.field == field, str(err.value)
    assert fragment in str(err.value)


def test_each_searched_method_takes_only_its_fields():
    spec = load_spec(
        SEARCHED + "rank: 4\ndensity: 0.3\nparams: {gamma: 0.05}\n"
        "search:\n  methods: [linear, delta_svd, ties, breadcrumbs]\n  scale: [0.5, 1.0]\n"
        "  objective: {evaluation: p}\n"
    )
    assert spec.searched_methods() == ["linear", "delta_svd", "ties", "breadcrumbs"]
    shown = {m: spec.for_method(m) for m in spec.searched_methods()}
    assert (shown["linear"].rank, shown["linear"].density, shown["linear"].params) == (None, None, None)
    assert (shown["delta_svd"].rank, shown["delta_svd"].density) == (4, None)
    assert (shown["ties"].density, shown["ties"].params) == (0.3, None)
    assert shown["breadcrumbs"].params == {"gamma": 0.05}
    assert all(s.search is None for s in shown.values())
    # a spec without search.methods or scale keeps its canonical form (and cache key)
    plain = load_spec(SEARCHED + "search:\n  weights: {acme/a: [0.2]}\n  objective: {evaluation: p}\n")
    assert set(plain.canonical()["search"]) == {"strategy", "weights", "objective"}
