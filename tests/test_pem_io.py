"""read_adapter metadata and every AdapterFormatError of the catalog contract; write round trip."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file, save_file

from registry.errors import AdapterFormatError
from registry.pem import read_adapter, write_adapter
from tests.compose_helpers import library
from tests.factories import tiny_model

WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"
Q0 = "base_model.model.model.layers.0.self_attn.q_proj"


@pytest.fixture
def lora_copy(tmp_path):
    dest = tmp_path / "a"
    shutil.copytree(library()["l1"], dest)
    return dest


def edit_config(folder, **changes):
    config = json.loads((folder / CONFIG).read_text())
    config.update(changes)
    (folder / CONFIG).write_text(json.dumps(config))


def edit_tensors(folder, fn):
    tensors = load_file(folder / WEIGHTS)
    fn(tensors)
    save_file(tensors, folder / WEIGHTS)


def test_lora_metadata():
    meta = read_adapter(library()["l_r8"]).metadata()
    assert json.loads(json.dumps(meta)) == meta
    assert meta["pem_type"] == "lora" and meta["r"] == 8 and meta["lora_alpha"] == 4
    assert meta["use_rslora"] is False and meta["dtype"] == "float32"
    assert meta["target_modules"] == ["k_proj", "o_proj", "q_proj", "v_proj"]
    assert meta["base_model_name_or_path"] == "tiny-llama"
    assert meta["module_shapes"]["model.layers.0.self_attn.q_proj"] == {"lora_A": [8, 32], "lora_B": [32, 8]}
    assert meta["num_parameters"] == 2 * 4 * (8 * 32 + 32 * 8)


def test_ia3_metadata():
    meta = read_adapter(library()["i1"]).metadata()
    assert meta["pem_type"] == "ia3" and meta["r"] is None and meta["lora_alpha"] is None
    assert meta["module_shapes"]["model.layers.0.mlp.down_proj"] == {"ia3_l": [1, 64]}
    assert meta["module_shapes"]["model.layers.0.self_attn.k_proj"] == {"ia3_l": [32, 1]}
    assert meta["num_parameters"] == 2 * (64 + 32 + 32)


def test_rank_pattern_is_respected(tmp_path):
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], rank_pattern={"q_proj": 6})
    get_peft_model(tiny_model(), cfg).save_pretrained(tmp_path / "rp")
    adapter = read_adapter(tmp_path / "rp")
    assert adapter.modules["model.layers.1.self_attn.q_proj"].r == 6
    assert adapter.modules["model.layers.1.self_attn.v_proj"].r == 4
    assert adapter.metadata()["r"] == 6
    edit_config(tmp_path / "rp", rank_pattern={})
    with pytest.raises(AdapterFormatError, match="q_proj'.*rank 6 but the config says r=4"):
        read_adapter(tmp_path / "rp")


def test_write_round_trip(tmp_path):
    x = read_adapter(library()["l_rs"])
    y = read_adapter(write_adapter(x, tmp_path / "w"))
    assert y.config == x.config
    assert all(
        torch.equal(y.modules[p].A, m.A) and torch.equal(y.modules[p].B, m.B) for p, m in x.modules.items()
    )


def test_missing_config(lora_copy):
    (lora_copy / CONFIG).unlink()
    with pytest.raises(AdapterFormatError, match="adapter_config.json not found"):
        read_adapter(lora_copy)


def test_unparsable_config(lora_copy):
    (lora_copy / CONFIG).write_text("{not json")
    with pytest.raises(AdapterFormatError, match="adapter_config.json: not valid JSON"):
        read_adapter(lora_copy)


def test_missing_weights(lora_copy):
    (lora_copy / WEIGHTS).unlink()
    with pytest.raises(AdapterFormatError, match="adapter_model.safetensors not found"):
        read_adapter(lora_copy)


@pytest.mark.parametrize("mangle", ["garbage", "truncated"])
def test_bad_safetensors(lora_copy, mangle):
    data = (lora_copy / WEIGHTS).read_bytes()
    (lora_copy / WEIGHTS).write_bytes(
        b"\x07garbage-bytes" * 3 if mangle == "garbage" else data[: len(data) // 2]
    )
    with pytest.raises(AdapterFormatError, match="unreadable safetensors"):
        read_adapter(lora_copy)


def test_unsupported_peft_type(lora_copy):
    edit_config(lora_copy, peft_type="LOHA")
    with pytest.raises(AdapterFormatError, match="unsupported peft_type 'LOHA'"):
        read_adapter(lora_copy)


def test_dora_refused_with_reason(lora_copy):
    edit_config(lora_copy, use_dora=True)
    with pytest.raises(AdapterFormatError, match="DoRA.*deltas do not add"):
        read_adapter(lora_copy)


def test_key_outside_target_modules(lora_copy):
    edit_config(lora_copy, target_modules=["q_proj", "v_proj"])
    with pytest.raises(AdapterFormatError, match="k_proj'.*not matched by target_modules"):
        read_adapter(lora_copy)


def test_unexpected_key(lora_copy):
    edit_tensors(lora_copy, lambda t: t.update({"base_model.model.lm_head.something": torch.ones(2)}))
    with pytest.raises(AdapterFormatError, match="lm_head.something.*unexpected key"):
        read_adapter(lora_copy)


def test_missing_half_of_a_pair(lora_copy):
    edit_tensors(lora_copy, lambda t: t.pop(Q0 + ".lora_B.weight"))
    with pytest.raises(AdapterFormatError, match="q_proj'.*lora_B tensor is missing"):
        read_adapter(lora_copy)


def test_rank_mismatch_vs_config(lora_copy):
    edit_config(lora_copy, r=8)
    with pytest.raises(AdapterFormatError, match="rank 4 but the config says r=8"):
        read_adapter(lora_copy)


def test_inner_shapes_disagree(lora_copy):
    edit_tensors(lora_copy, lambda t: t.update({Q0 + ".lora_B.weight": torch.ones(32, 3)}))
    with pytest.raises(AdapterFormatError, match=r"q_proj'.*\[4, 32\].*\[32, 3\] inner ranks differ"):
        read_adapter(lora_copy)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_tensor_named(lora_copy, value):
    def poison(t):
        t[Q0 + ".lora_A.weight"][1, 2] = value

    edit_tensors(lora_copy, poison)
    with pytest.raises(AdapterFormatError, match=r"q_proj.lora_A.weight' contains NaN or Inf"):
        read_adapter(lora_copy)


def test_ia3_wrong_orientation(tmp_path):
    dest = tmp_path / "i"
    shutil.copytree(library()["i1"], dest)
    key = "base_model.model.model.layers.0.mlp.down_proj.ia3_l"
    edit_tensors(dest, lambda t: t.update({key: torch.ones(64, 1)}))
    with pytest.raises(AdapterFormatError, match=r"down_proj.ia3_l'.*expected \(1, in_features\)"):
        read_adapter(dest)
