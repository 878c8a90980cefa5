"""Adapter folders made once per session by peft (building them costs ~0.3 s each)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.factories import make_ia3, make_lora


@pytest.fixture(scope="session")
def adapter_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    return {
        "lora": make_lora(root / "lora", seed=1),
        "lora2": make_lora(root / "lora2", seed=2),
        "lora_gpt2": make_lora(root / "lora_gpt2", arch="gpt2", seed=3),
        "ia3": make_ia3(root / "ia3", seed=4),
    }
