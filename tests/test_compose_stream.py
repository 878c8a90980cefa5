"""The streaming engine (compose_files): same output as the in-memory engine, module by module."""

from __future__ import annotations

import json
import math
import weakref
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from benchmarks.memory_8b import write_llama_lora
from registry.compose import compose
from registry.compose.stream import compose_files
from registry.errors import AdapterFormatError, IncompatibleAdapters
from registry.pem import read_adapter
from registry.pem.lazy import TensorFile
from tests.compose_helpers import assert_close, library, weighted_delta_sum

PRUNING = {"density": 0.5}
CASES = [
    (["l1", "l2", "l3"], "linear", {}),
    (["l1", "l2", "l3"], "delta_cat", {}),
    (["l1", "l2", "l3"], "delta_svd", {"rank": 4}),
    (["l1", "l_r8", "l_qv"], "delta_svd", {}),  # mixed ranks and targets
    (["l1", "l_r8", "l_qv"], "delta_cat", {}),
    (["l_f16", "l_bf16", "l1"], "delta_svd", {}),  # dtypes promote
    (["l1", "l2", "l3"], "ties", PRUNING),
    (["l1", "l2", "l3"], "dare_ties", {**PRUNING, "seed": 3}),
    (["l1", "l2", "l3"], "dare_linear", PRUNING),
    (["l1", "l2", "l3"], "magnitude_prune", PRUNING),
    (["l_rs", "l3"], "linear", {}),  # rslora scale
    (["i1", "i2", "i_sub"], "linear", {}),
    (["i1", "i2", "i_sub"], "delta_svd", {}),
    (["i1", "i2", "i_sub"], "ties", PRUNING),
    (["i1", "i2", "i_sub"], "dare_linear", PRUNING),
    (["i1", "i2", "i_sub"], "magnitude_prune", PRUNING),
    (["g1", "g2"], "delta_svd", {}),  # GPT-2 Conv1D
]


@pytest.mark.parametrize(("names", "method", "kwargs"), CASES)
def test_streamed_output_is_bitwise_the_in_memory_output(names, method, kwargs, tmp_path):
    lib = library()
    weights = [0.7, -0.4, 1.3][: len(names)]
    expected = compose([read_adapter(lib[n]) for n in names], weights, method, **kwargs)
    streamed = compose_files([lib[n] for n in names], weights, tmp_path / "out", method, **kwargs)
    written = read_adapter(tmp_path / "out")
    want = expected.adapter.to_tensors()
    got = load_file(tmp_path / "out" / "adapter_model.safetensors")
    assert sorted(got) == sorted(want)
    for key, tensor in want.items():
        assert got[key].dtype == tensor.dtype and torch.equal(got[key], tensor), key
    assert written.config == expected.adapter.config
    # The controls (compose/controls.py) are float32 diagnostics of the same tensors: equal to rounding.
    streamed_controls = {p: r.pop("control") for p, r in streamed.modules.items()}
    expected_controls = {p: r.pop("control") for p, r in expected.modules.items()}
    assert streamed_controls.keys() == expected_controls.keys()
    for path, control in streamed_controls.items():
        assert control == pytest.approx(expected_controls[path], rel=1e-5)
    assert streamed.summary.pop("control") == pytest.approx(expected.summary.pop("control"), rel=1e-5)
    assert streamed.modules == expected.modules and streamed.summary == expected.summary
    assert streamed.adapter.metadata() == expected.adapter.metadata()
    assert not list((tmp_path / "out").glob("*.partial"))


def test_streamed_linear_matches_the_dense_weighted_sum(tmp_path):
    """Independent of both engines: sum_i w_i s_i B_i A_i from the raw files, in float64."""
    lib = library()
    folders, weights = [lib["l1"], lib["l3"]], [0.6, -1.1]
    compose_files(folders, weights, tmp_path / "out", "delta_cat")
    tensors = load_file(tmp_path / "out" / "adapter_model.safetensors")
    config = json.loads((tmp_path / "out" / "adapter_config.json").read_text())
    scale = config["lora_alpha"] / config["r"]
    for path, delta in weighted_delta_sum(folders, weights).items():
        key = "base_model.model." + path
        got = scale * tensors[key + ".lora_B.weight"].double() @ tensors[key + ".lora_A.weight"].double()
        assert_close(got, delta)


def _copy_with(src: Path, dest: Path, edit) -> Path:
    dest.mkdir()
    (dest / "adapter_config.json").write_text((src / "adapter_config.json").read_text())
    tensors = load_file(src / "adapter_model.safetensors")
    edit(tensors)
    save_file(tensors, dest / "adapter_model.safetensors", metadata={"format": "pt"})
    return dest


def test_nan_in_one_late_module_is_refused_and_nothing_is_written(tmp_path):
    lib = library()
    last = sorted(k for k in load_file(lib["l2"] / "adapter_model.safetensors") if "lora_B" in k)[-1]

    def poison(tensors):
        tensors[last][0, 0] = math.nan

    bad = _copy_with(lib["l2"], tmp_path / "bad", poison)
    with pytest.raises(AdapterFormatError, match="NaN"):
        compose_files([lib["l1"], bad], [1.0, 1.0], tmp_path / "out", "delta_svd")
    assert not (tmp_path / "out" / "adapter_model.safetensors").exists()
    assert not list((tmp_path / "out").glob("*"))


def test_incompatible_shapes_are_refused_before_any_data_is_read(tmp_path, monkeypatch):
    lib = library()
    reads: list[str] = []
    original = TensorFile.read
    monkeypatch.setattr(TensorFile, "read", lambda self, key: reads.append(key) or original(self, key))
    with pytest.raises(IncompatibleAdapters, match="ranks differ"):
        compose_files([lib["l1"], lib["l_r8"]], [1.0, 1.0], tmp_path / "out", "linear")
    assert reads == []
    assert not (tmp_path / "out" / "adapter_model.safetensors").exists()


def test_truncated_file_is_an_adapter_format_error(tmp_path):
    lib = library()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "adapter_config.json").write_text((lib["l1"] / "adapter_config.json").read_text())
    data = (lib["l1"] / "adapter_model.safetensors").read_bytes()
    (bad / "adapter_model.safetensors").write_bytes(data[: len(data) - 100])
    with pytest.raises(AdapterFormatError, match="unreadable safetensors"):
        compose_files([lib["l1"], bad], [1.0, 1.0], tmp_path / "out")


def _peak_bytes_held(monkeypatch, run) -> tuple[int, int]:
    """(peak bytes of tensors returned by the reader still alive at once, total bytes read)."""
    live = {"now": 0, "peak": 0, "total": 0}
    original = TensorFile.read

    def release(n: int) -> None:
        live["now"] -= n

    def counting(self, key):
        tensor = original(self, key)
        n = tensor.numel() * tensor.element_size()
        live["now"] += n
        live["total"] += n
        live["peak"] = max(live["peak"], live["now"])
        weakref.finalize(tensor, release, n)
        return tensor

    monkeypatch.setattr(TensorFile, "read", counting)
    run()
    return live["peak"], live["total"]


@pytest.mark.parametrize("method", ["delta_svd", "delta_cat", "linear"])
def test_memory_held_is_one_module_of_each_input_not_the_files(method, tmp_path, monkeypatch):
    """The memory proxy: bytes the reader hands out that are alive at the same time. Whole files
    would be n x (all modules); streaming holds n x (one module), whatever the number of modules."""
    folders = [write_llama_lora(tmp_path / f"a{i}", 64, 96, 3, 32, seed=i) for i in range(6)]
    sizes = TensorFile(folders[0] / "adapter_model.safetensors").tensors
    file_bytes = sum(t.nbytes for t in sizes.values())
    module_bytes = max(
        sizes[k].nbytes + sizes[k.replace("lora_A", "lora_B")].nbytes for k in sizes if "lora_A" in k
    )
    for n in (2, 6):
        peak, total = _peak_bytes_held(
            monkeypatch,
            lambda n=n: compose_files(folders[:n], [0.5] * n, tmp_path / f"out{n}", method, rank=16),
        )
        assert total == n * file_bytes  # every tensor read exactly once
        assert peak <= n * module_bytes  # one module of every input at a time
        assert peak < file_bytes  # (3 layers x 7 modules: far below one whole file)


def test_benchmark_adapters_load_in_peft(tmp_path):
    """benchmarks/memory_8b.py writes adapters without a model: peft must load them as its own."""
    from peft import PeftModel
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = write_llama_lora(tmp_path / "a", 64, 96, 2, 32, seed=7)
    cfg = LlamaConfig(
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,  # head dim 16: k/v project to 32
        vocab_size=64,
    )
    model = PeftModel.from_pretrained(LlamaForCausalLM(cfg), folder)
    tensors = load_file(folder / "adapter_model.safetensors")
    params = {k.replace(".default", ""): p for k, p in model.named_parameters() if "lora_" in k}
    assert sorted(params) == sorted(tensors)  # no missing, no unexpected keys
    for key, tensor in tensors.items():
        assert torch.equal(params[key].detach(), tensor), key
    assert read_adapter(folder).metadata()["r"] == 16
