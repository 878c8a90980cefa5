"""Adapter folders made once per session by peft (building them costs ~0.1-0.3 s each)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


_MADE: dict[tuple[object, ...], Path] = {}
_ROOT: list[Path] = []


def copy_of(maker: Callable[..., Path], dest: Path, *args: Any, **kwargs: Any) -> Path:
    """`maker(dest, *args, **kwargs)` (make_lora, make_ia3, save_tiny_base: seeded, the same bytes every
    call) built once per test process and copied to `dest`, which the test owns and may change. For the
    fixtures that make the same folders for every test (~0.1 s each by peft, ~1 ms a copy)."""
    key = (maker.__name__, args, tuple(sorted(kwargs.items())))
    if key not in _MADE:
        if not _ROOT:
            _ROOT.append(Path(tempfile.mkdtemp(prefix="pemreg-test-made-")))
            atexit.register(shutil.rmtree, _ROOT[0], True)
        _MADE[key] = maker(_ROOT[0] / str(len(_MADE)), *args, **kwargs)
    shutil.copytree(_MADE[key], dest)
    return dest
