"""A weight merge reads each input once: the flow's compose step composes and measures interference
in the same streamed pass (engine.run feeding an InterferenceMeter), and what it measures is exactly
what the interference report's own pass measures on the same inputs."""

from __future__ import annotations

import pytest

from benchmarks.memory_8b import write_llama_lora
from flows.tasks import InterferenceSettings, compose_measured_task
from registry.compose import compose, interference_files
from registry.pem import read_adapter
from registry.pem.lazy import TensorFile
from registry.spec import load_spec
from tests.test_compose_stream import _peak_bytes_held

WEIGHTS = [1.0, 0.5, -0.5, 0.25]
CASES = [
    ("delta_svd", "rank: 8\n", {"rank": 8}),
    ("linear", "", {}),
    ("ties", "rank: 8\ndensity: 0.4\n", {"rank": 8, "density": 0.4}),
]


@pytest.mark.parametrize(("method", "yaml", "kwargs"), CASES)
def test_a_weight_merge_reads_each_input_once_for_composition_and_interference(
    method, yaml, kwargs, tmp_path, monkeypatch
):
    folders = [write_llama_lora(tmp_path / f"a{i}", 64, 96, 3, 32, seed=i) for i in range(4)]
    file_bytes = sum(t.nbytes for t in TensorFile(folders[0] / "adapter_model.safetensors").tensors.values())
    expression = " + ".join(f"acme/a{i}" for i in range(4))
    spec = load_spec(f"name: acme/x\nexpression: '{expression}'\nmethod: {method}\n{yaml}")
    names = [f"acme/a{i}@1" for i in range(4)]
    measure = InterferenceSettings(names=names, threshold=0.05, method=method, core_density=0.3)
    held = {}

    def run() -> None:
        held["measured"] = compose_measured_task.fn(
            [str(f) for f in folders], WEIGHTS, spec, str(tmp_path / "out"), measure
        )

    _, total = _peak_bytes_held(monkeypatch, run)
    monkeypatch.undo()
    assert total == 4 * file_bytes  # every input's bytes read exactly once, for both jobs

    measured = held["measured"]
    alone = interference_files(
        folders, WEIGHTS, threshold=0.05, names=names, method=method, core_density=0.3
    ).to_dict()
    assert measured.interference["warnings"] == alone["warnings"]
    assert measured.interference["linear_cross_term_error"] == pytest.approx(alone["linear_cross_term_error"])
    assert len(measured.interference["pairs"]) == 6
    for got, want in zip(measured.interference["pairs"], alone["pairs"], strict=True):
        assert got == pytest.approx(want)

    expected = compose([read_adapter(f) for f in folders], WEIGHTS, method, **kwargs).adapter
    written = read_adapter(tmp_path / "out")
    for path, module in expected.modules.items():
        assert (written.modules[path].A == module.A).all() and (written.modules[path].B == module.B).all()
    assert measured.engine["method"] == method


def test_the_interference_report_alone_still_reads_each_input_once(tmp_path, monkeypatch):
    folders = [write_llama_lora(tmp_path / f"a{i}", 64, 96, 3, 32, seed=i) for i in range(3)]
    file_bytes = sum(t.nbytes for t in TensorFile(folders[0] / "adapter_model.safetensors").tensors.values())
    _, total = _peak_bytes_held(monkeypatch, lambda: interference_files(folders, [1.0, 1.0, -1.0]))
    assert total == 3 * file_bytes
