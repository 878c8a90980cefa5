"""Spec fields of core_merge, output kind ensemble and compare_decoding: accepted forms, and every
wrong combination refused with the field it is about."""

from __future__ import annotations

import json

import pytest

from registry.errors import InvalidInput
from registry.spec import load_spec

BASE = {"name": "acme/out", "expression": "0.5 * acme/a + 0.5 * acme/b"}
EVAL = [{"name": "ppl", "metric": "perplexity", "dataset": "file:///d.jsonl"}]


def spec(**fields):
    return load_spec(json.dumps({**BASE, **fields}))


def test_core_merge_fields():
    s = spec(method="core_merge", density=0.2, rank=8)
    assert s.core_criterion is None and s.calibration_dataset() is None
    s = spec(method="core_merge", density=0.2, core_criterion="importance", calibration="ppl", evaluate=EVAL)
    assert s.calibration_dataset() == "file:///d.jsonl"  # an evaluation name means its dataset
    s = spec(method="core_merge", density=0.2, core_criterion="importance", calibration="s3://b/c.jsonl")
    assert s.calibration_dataset() == "s3://b/c.jsonl"


def test_new_optional_fields_keep_old_canonical_form():
    # Cache keys of existing specs must not change: unset new fields are dropped from the canonical form.
    canonical = spec().canonical()
    assert not {"core_criterion", "calibration", "compare_decoding"} & set(canonical)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"method": "core_merge"}, "density"),
        ({"method": "core_merge", "density": 0.0}, "density"),
        ({"method": "core_merge", "density": 0.5, "core_criterion": "gradient"}, "core_criterion"),
        ({"method": "delta_svd", "core_criterion": "magnitude"}, "core_criterion"),
        ({"method": "core_merge", "density": 0.5, "core_criterion": "importance"}, "calibration"),
        ({"method": "core_merge", "density": 0.5, "calibration": "ppl"}, "calibration"),
        (
            {
                "method": "core_merge",
                "density": 0.5,
                "core_criterion": "importance",
                "calibration": "ppl",
                "evaluate": EVAL,
                "search": {"weights": {"acme/a": [0.1, 0.2]}, "objective": {"evaluation": "ppl"}},
            },
            "search",
        ),
        ({"compare_decoding": True}, "compare_decoding"),
        ({"method": "delta_svd", "output": {"kind": "ensemble"}}, "method"),
        ({"output": {"kind": "ensemble"}, "compare_decoding": True}, "compare_decoding"),
        ({"output": {"kind": "bundle"}}, "output"),
        ({"compare_decoding": "often"}, "compare_decoding"),
    ],
)
def test_wrong_combinations_name_the_field(fields, field):
    with pytest.raises(InvalidInput) as exc:
        spec(**fields)
    assert exc.value.field is not None and exc.value.field.split(".")[0] == field, exc.value


def test_ensemble_and_compare_decoding_accepted():
    assert spec(output={"kind": "ensemble"}, evaluate=EVAL).output.kind == "ensemble"
    assert spec(compare_decoding=True, method="delta_svd", evaluate=EVAL).compare_decoding is True
