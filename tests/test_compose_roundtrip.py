"""Output folders load in peft without key warnings, and logits equal base + dense delta by hand;
merged-model output equals the same hand-made model."""

from __future__ import annotations

import hashlib
import logging
import warnings

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from registry.compose import compose, merge_into_base
from registry.errors import IncompatibleAdapters
from registry.pem import LoraModule, read_adapter, write_adapter
from tests.compose_helpers import ia3_vectors, library, weighted_delta_sum
from tests.factories import tiny_model

TOKENS = torch.tensor([[1, 5, 9, 17, 33, 65, 2, 100]])


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(TOKENS).logits


def load_quietly(folder, arch, caplog) -> PeftModel:
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        model = PeftModel.from_pretrained(tiny_model(arch), folder)
    messages = [str(w.message) for w in caught] + [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "missing" in m.lower() or "unexpected" in m.lower()], messages
    return model.eval()


def by_hand_lora(arch: str, deltas: dict[str, torch.Tensor]):
    model = tiny_model(arch)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for path, d in deltas.items():
            w = params[path + ".weight"]
            w += (d.T if arch == "gpt2" else d).to(w.dtype)  # gpt2 Conv1D stores (in, out)
    return model


def by_hand_ia3(arch: str, vectors: dict[str, torch.Tensor], ff: set[str]):
    model = tiny_model(arch)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for path, v in vectors.items():
            w = params[path + ".weight"]
            vec = v.flatten().float()
            # feedforward: scale inputs; else scale outputs (and the bias, since it is added first)
            if arch == "gpt2":  # weight is (in, out)
                w *= vec[:, None] if path in ff else vec[None, :]
            else:  # weight is (out, in)
                w *= vec[None, :] if path in ff else vec[:, None]
            if path not in ff and path + ".bias" in params:
                params[path + ".bias"] *= vec
    return model


@pytest.mark.parametrize(
    ("arch", "names", "method"),
    [
        ("llama", ["l1", "l2"], "delta_svd"),
        ("llama", ["l1", "l_qv"], "delta_cat"),
        ("gpt2", ["g1", "g2"], "delta_cat"),
    ],
)
def test_lora_output_loads_in_peft_and_matches_dense_delta(tmp_path, caplog, arch, names, method):
    lib = library()
    weights = [0.8, -0.6]
    result = compose([read_adapter(lib[n]) for n in names], weights, method, rank=8)
    folder = write_adapter(result.adapter, tmp_path / "out")
    peft_model = load_quietly(folder, arch, caplog)
    expected = by_hand_lora(arch, weighted_delta_sum([lib[n] for n in names], weights))
    torch.testing.assert_close(logits(peft_model), logits(expected), rtol=1e-4, atol=1e-4)
    assert not torch.allclose(logits(expected), logits(tiny_model(arch)), atol=1e-3)  # the delta matters

    merged = tmp_path / "merged"
    digests = merge_into_base(lib[f"base_{arch}"], result.adapter, merged)
    assert (
        digests["model.safetensors"]
        == hashlib.sha256((merged / "model.safetensors").read_bytes()).hexdigest()
    )
    assert "config.json" in digests
    reloaded = AutoModelForCausalLM.from_pretrained(merged).eval()
    torch.testing.assert_close(logits(reloaded), logits(expected), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("arch", "names"), [("llama", ["i1", "i_sub"]), ("gpt2", ["gi1", "gi2"])])
def test_ia3_output_loads_in_peft_and_matches_scaled_weights(tmp_path, caplog, arch, names):
    lib = library()
    weights = [0.5, -0.7]
    result = compose([read_adapter(lib[n]) for n in names], weights, "linear")
    folder = write_adapter(result.adapter, tmp_path / "out")
    peft_model = load_quietly(folder, arch, caplog)
    vectors = [ia3_vectors(lib[n]) for n in names]
    combined = {
        p: 1 + sum(w * (v[p] - 1) for v, w in zip(vectors, weights, strict=True) if p in v)
        for p in vectors[0]
    }
    ff = {p for p in combined if "mlp" in p and ("down_proj" in p or "c_proj" in p)}
    expected = by_hand_ia3(arch, combined, ff)
    torch.testing.assert_close(logits(peft_model), logits(expected), rtol=1e-4, atol=1e-4)

    merged = tmp_path / "merged"
    merge_into_base(lib[f"base_{arch}"], result.adapter, merged)
    reloaded = AutoModelForCausalLM.from_pretrained(merged).eval()
    torch.testing.assert_close(logits(reloaded), logits(expected), rtol=1e-4, atol=1e-4)


def test_merge_refuses_a_module_the_base_lacks(tmp_path):
    lib = library()
    x = read_adapter(lib["l1"])
    m = next(iter(x.modules.values()))
    x.modules = {**x.modules, "model.layers.9.self_attn.q_proj": LoraModule(A=m.A, B=m.B, alpha=m.alpha)}
    with pytest.raises(IncompatibleAdapters, match="model.layers.9.self_attn.q_proj"):
        merge_into_base(lib["base_llama"], x, tmp_path / "m")


def test_merge_streams_a_sharded_base_like_peft_merge_and_unload(tmp_path):
    lib = library()
    base = tmp_path / "sharded"
    tiny_model("llama").save_pretrained(base, max_shard_size="40KB")
    shards = sorted(p.name for p in base.glob("*.safetensors"))
    assert len(shards) > 1 and (base / "model.safetensors.index.json").is_file()
    result = compose([read_adapter(lib["l1"]), read_adapter(lib["l2"])], [1.0, -0.5], "delta_svd")
    folder = write_adapter(result.adapter, tmp_path / "adapter")
    digests = merge_into_base(base, result.adapter, tmp_path / "merged")
    assert set(shards) | {"model.safetensors.index.json", "config.json"} <= set(digests)
    for name, digest in digests.items():
        assert hashlib.sha256((tmp_path / "merged" / name).read_bytes()).hexdigest() == digest
    reference = PeftModel.from_pretrained(tiny_model("llama"), folder).merge_and_unload().eval()
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    torch.testing.assert_close(logits(reloaded), logits(reference), rtol=1e-5, atol=1e-5)
