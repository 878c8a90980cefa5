"""A run's inputs are cached per content: a version's digest is its weights', and two versions may share
weights under different configs, so each must come back with its own adapter_config.json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from registry import service
from registry.service import Registry
from registry.service.compositions.inputs import fetch_input, resolve_inputs
from registry.spec import CompositionSpec
from tests.factories import make_lora


def test_same_weights_under_two_configs_fetch_their_own_config(reg: Registry, tmp_path: Path) -> None:
    first = make_lora(tmp_path / "a", seed=1)
    second = tmp_path / "b"
    shutil.copytree(first, second)
    config = json.loads((second / "adapter_config.json").read_text())
    config["lora_alpha"] = config["lora_alpha"] * 2  # another scale on the same factors
    (second / "adapter_config.json").write_text(json.dumps(config))
    service.register_adapter(reg, first, "t/a")
    service.register_adapter(reg, second, "t/b")

    spec = CompositionSpec.model_validate({"name": "t/x", "expression": "t/a + t/b"})
    a, b = resolve_inputs(reg, spec)
    assert a.sha256 == b.sha256  # one weights digest
    for item, source in ((a, first), (b, second)):
        for _ in range(2):  # downloaded, then served from the cache
            folder = fetch_input(reg, item)
            got = json.loads((folder / "adapter_config.json").read_text())
            assert got["lora_alpha"] == json.loads((source / "adapter_config.json").read_text())["lora_alpha"]
    assert fetch_input(reg, a) != fetch_input(reg, b)
