"""Calibration norms for core_merge `importance`, against activations recomputed from hidden states."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from registry.errors import InvalidInput
from registry.evaluation.calibration import activation_norms, load_norms, save_norms
from registry.evaluation.tokens import ByteTokenizer
from tests.factories import save_tiny_base

TEXTS = ["calibration text one", "and another, longer calibration text"]
PATHS = ["model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.v_proj"]


def test_norms_match_recomputed_module_activations(tmp_path: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(save_tiny_base(tmp_path / "base")).eval()
    norms = activation_norms(model, ByteTokenizer(128), TEXTS, PATHS, max_len=64)
    layers = model.model.layers
    sq_in = {p: 0.0 for p in PATHS}
    sq_out = {p: 0.0 for p in PATHS}
    with torch.no_grad():
        for text in TEXTS:
            hidden = model(
                input_ids=torch.tensor([list(text.encode())]), output_hidden_states=True
            ).hidden_states
            for path, layer, proj in ((PATHS[0], 0, "q_proj"), (PATHS[1], 1, "v_proj")):
                x = layers[layer].input_layernorm(hidden[layer])[0].double()
                y = x @ getattr(layers[layer].self_attn, proj).weight.double().T
                sq_in[path] = sq_in[path] + x.square().sum(0)
                sq_out[path] = sq_out[path] + y.square().sum(0)
    for path in PATHS:
        torch.testing.assert_close(norms[path].input, sq_in[path].sqrt(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(norms[path].output, sq_out[path].sqrt(), rtol=1e-5, atol=1e-6)
    save_norms(norms, tmp_path / "norms.safetensors")
    again = load_norms(tmp_path / "norms.safetensors")
    assert set(again) == set(PATHS) and torch.equal(again[PATHS[1]].output, norms[PATHS[1]].output)


def test_unknown_module_is_a_calibration_error(tmp_path: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(save_tiny_base(tmp_path / "base")).eval()
    with pytest.raises(InvalidInput) as exc:
        activation_norms(model, ByteTokenizer(128), TEXTS, ["model.layers.9.mlp.up_proj"], max_len=64)
    assert exc.value.field == "calibration"
