"""Registration streams: a large adapter is validated one module at a time, never loaded whole.

The campaign measured +392 MB of server memory registering a 410 MB adapter (the whole file loaded to
check it). Here a `pemreg adapters add` process registers a 256 MB LoRA (8 modules of 32 MB) and a
tiny one; the large one may cost at most a third of its size more peak memory than the tiny one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from registry.catalog.migrate import upgrade
from tests.factories import make_lora
from tests.live_server import clean_env

MODULES, R, WIDTH = 8, 16, 262_144  # lora_A [16, 262144] + lora_B [262144, 16] float32: 32 MB a module


def _big_lora(dest: Path) -> Path:
    dest.mkdir()
    tensors = {}
    for i in range(MODULES):
        prefix = f"base_model.model.model.layers.{i}.self_attn.q_proj"
        tensors[f"{prefix}.lora_A.weight"] = torch.full((R, WIDTH), 0.01)
        tensors[f"{prefix}.lora_B.weight"] = torch.full((WIDTH, R), 0.01)
    save_file(tensors, str(dest / "adapter_model.safetensors"))
    config = {
        "peft_type": "LORA",
        "r": R,
        "lora_alpha": 16,
        "target_modules": ["q_proj"],
        "base_model_name_or_path": "wide-base",
        "task_type": "CAUSAL_LM",
    }
    (dest / "adapter_config.json").write_text(json.dumps(config))
    return dest


def _peak_kib(env: dict[str, str], folder: Path, name: str) -> int:
    """Peak RSS of one `pemreg adapters add` process (measured by a wrapper that only waits for it)."""
    wrapper = (
        "import resource, subprocess, sys; "
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "assert done.returncode == 0, done.stderr; "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    cmd = [
        sys.executable,
        "-c",
        wrapper,
        sys.executable,
        "-m",
        "api.cli.main",
        "adapters",
        "add",
        str(folder),
    ]
    out = subprocess.run([*cmd, "--name", name], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip().splitlines()[-1])


def test_registering_a_large_adapter_holds_one_module_not_the_file(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'reg.db'}"
    upgrade(db)
    env = clean_env(
        PEMREG_DATABASE_URL=db,
        PEMREG_HOME=str(tmp_path / "home"),
        PEMREG_ARTIFACT_STORE=(tmp_path / "store").as_uri(),
        HF_HUB_OFFLINE="1",
    )
    small = _peak_kib(env, make_lora(tmp_path / "small"), "mem/small")
    big = _big_lora(tmp_path / "big")
    size_kib = os.path.getsize(big / "adapter_model.safetensors") // 1024
    large = _peak_kib(env, big, "mem/large")
    extra_mib = (large - small) / 1024
    print(
        f"register {size_kib // 1024} MiB adapter: peak RSS +{extra_mib:.0f} MiB over a tiny one "
        f"(load {os.getloadavg()[0]:.1f})"
    )
    assert large - small < size_kib / 3, (small, large, size_kib)
