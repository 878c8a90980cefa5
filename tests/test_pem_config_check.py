"""adapter_config.json field checks and the bounded regex matching they lead to (pure, milliseconds)."""

from __future__ import annotations

import time

import pytest

from registry.errors import AdapterFormatError
from registry.pem.base import matches_target, pattern_value
from registry.pem.config_check import MAX_DEPTH, check_ia3, check_lora, depth_of

VALID = {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj"]}


def test_valid_config_passes_and_each_bad_field_is_named() -> None:
    check_lora(VALID)
    bad = {
        "r": [None, "8", 0, -1, True, 2.5, 10**9],
        "lora_alpha": [None, "abc", float("nan"), float("inf"), [1]],
        "target_modules": [None, 5, "(", [], [5], [""], {"q": 1}],
        "rank_pattern": ["abc", {"(": 4}, {"q_proj": "x"}, {"q_proj": 0}],
        "alpha_pattern": [{"q_proj": None}, {"[": 1.0}],
        "modules_to_save": [5, "lm_head", [1]],
        "base_model_name_or_path": [5, ["a"], "x" * 300, "tiny\n"],
        "use_rslora": ["yes", 1],
    }
    for field, values in bad.items():
        for value in values:
            with pytest.raises(AdapterFormatError) as info:
                check_lora({**VALID, field: value})
            assert info.value.field == field and field in str(info.value), (field, value)


def test_ia3_fields() -> None:
    check_ia3({"peft_type": "IA3", "target_modules": ["k_proj"], "feedforward_modules": ["down_proj"]})
    with pytest.raises(AdapterFormatError, match="feedforward_modules"):
        check_ia3({"peft_type": "IA3", "target_modules": ["k_proj"], "feedforward_modules": 3})


def test_depth_is_counted_without_recursion() -> None:
    deep: list[object] = []
    node = deep
    for _ in range(100_000):
        child: list[object] = []
        node.append(child)
        node = child
    assert depth_of(deep) > MAX_DEPTH
    with pytest.raises(AdapterFormatError, match="nested deeper"):
        check_lora({**VALID, "x": deep})


def test_catastrophic_pattern_is_refused_in_bounded_time() -> None:
    started = time.monotonic()
    with pytest.raises(AdapterFormatError, match="takes too long"):
        matches_target("a" * 5000, "(a|aa)+c")
    assert time.monotonic() - started < 5
    # PEFT's rules still hold: full match for a string, suffix match for a list, pattern anchoring.
    assert matches_target("model.layers.0.self_attn.q_proj", r".*\.(q_proj|v_proj)")
    assert matches_target("model.layers.0.self_attn.q_proj", ["q_proj"])
    assert not matches_target("model.layers.0.self_attn.q_proj", "q_proj")
    assert pattern_value({"q_proj": 6}, "model.layers.0.self_attn.q_proj", 4) == 6
    assert pattern_value({"k_proj": 6}, "model.layers.0.self_attn.q_proj", 4) == 4
