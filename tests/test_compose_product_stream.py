"""What the product runs reads its inputs one module at a time: the compose step (dense methods
included), the interference report, and the flow's compose task; none reads an input whole."""

from __future__ import annotations

import pytest

from benchmarks.memory_8b import write_llama_lora
from registry.compose import compose, compose_files, interference_files, interference_report
from registry.pem import read_adapter
from registry.pem.lazy import TensorFile
from tests.test_compose_stream import _peak_bytes_held


def _folders(tmp_path, n):
    return [write_llama_lora(tmp_path / f"a{i}", 64, 96, 3, 32, seed=i) for i in range(n)]


def _sizes(folder):
    sizes = TensorFile(folder / "adapter_model.safetensors").tensors
    file_bytes = sum(t.nbytes for t in sizes.values())
    module_bytes = max(
        sizes[k].nbytes + sizes[k.replace("lora_A", "lora_B")].nbytes for k in sizes if "lora_A" in k
    )
    return file_bytes, module_bytes


@pytest.mark.parametrize(
    ("method", "kwargs"), [("ties", {"density": 0.5}), ("dare_linear", {"density": 0.3})]
)
def test_dense_methods_stream_one_module_of_each_input(method, kwargs, tmp_path, monkeypatch):
    folders = _folders(tmp_path, 6)
    file_bytes, module_bytes = _sizes(folders[0])
    out = tmp_path / "out"
    peak, total = _peak_bytes_held(
        monkeypatch, lambda: compose_files(folders, [0.5, -0.3] * 3, out, method, rank=8, **kwargs)
    )
    assert total == 6 * file_bytes
    assert peak <= 6 * module_bytes < file_bytes
    expected = compose([read_adapter(f) for f in folders], [0.5, -0.3] * 3, method, rank=8, **kwargs)
    written = read_adapter(out)
    for path, module in expected.adapter.modules.items():
        assert (written.modules[path].A == module.A).all() and (written.modules[path].B == module.B).all()


def test_interference_from_folders_streams_and_equals_the_in_memory_report(tmp_path, monkeypatch):
    folders = _folders(tmp_path, 5)
    file_bytes, module_bytes = _sizes(folders[0])
    weights = [0.4, -0.7, 1.0, 0.2, 0.5]
    held: dict[str, object] = {}

    def run() -> None:
        held["report"] = interference_files(folders, weights, method="linear")

    peak, total = _peak_bytes_held(monkeypatch, run)
    assert total == 5 * file_bytes and peak <= 5 * module_bytes < file_bytes
    streamed = held["report"].to_dict()
    expected = interference_report([read_adapter(f) for f in folders], weights, method="linear").to_dict()
    assert streamed["warnings"] == expected["warnings"]
    assert streamed["linear_cross_term_error"] == pytest.approx(expected["linear_cross_term_error"])
    for got, want in zip(streamed["pairs"], expected["pairs"], strict=True):
        assert got == pytest.approx(want)


def test_the_flows_compose_task_goes_through_the_streaming_engine(tmp_path, monkeypatch):
    """flows/tasks.compose_task: reads no input whole and writes the same adapter as `compose`."""
    import registry.pem.io as pem_io
    from flows.tasks import compose_task
    from registry.spec import load_spec

    folders = _folders(tmp_path, 3)
    spec = load_spec("name: acme/x\nexpression: 'acme/a + acme/b + acme/c'\nmethod: delta_svd\nrank: 8\n")

    def refuse(*args, **kwargs):
        raise AssertionError("compose_task read an input whole")

    monkeypatch.setattr(pem_io, "read_adapter", refuse)
    monkeypatch.setattr("registry.pem.read_adapter", refuse)
    monkeypatch.setattr("flows.tasks.read_adapter", refuse)
    report = compose_task.fn([str(f) for f in folders], [1.0, 0.5, -0.5], spec, str(tmp_path / "out"))
    monkeypatch.undo()
    assert report["method"] == "delta_svd" and report["params"]["rank"] == 8
    expected = compose([read_adapter(f) for f in folders], [1.0, 0.5, -0.5], "delta_svd", rank=8).adapter
    written = read_adapter(tmp_path / "out")
    for path, module in expected.modules.items():
        assert (written.modules[path].A == module.A).all(), path
