"""`pemreg adapters pull` in local mode on both backends: the layout vLLM's filesystem resolver and
LoRAX read, the config's base pointing at the registered base's source, bytes checked, the alias link
moved atomically, a second pull a no-op; and the CLI command itself (exit codes, one error line)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from api.cli.backend import LocalBackend
from registry import service
from registry.hashing import sha256_file
from registry.service import Registry
from tests import cli_inproc
from tests.factories import make_ia3, make_lora
from tests.flow_fixtures import settings_env

SOURCE = "hf-internal-testing/tiny-llama"


def _quiet(_name: str, _total: int):  # noqa: ANN202 - a progress factory
    return lambda _n: None


def _resolver_finds(dest: Path, lora_name: str, served_model: str) -> bool:
    """What vLLM's filesystem resolver checks (vllm/plugins/lora_resolvers/filesystem_resolver.py):
    DIR/<lora_name>/adapter_config.json exists, is a LoRA, and names the served base model."""
    config_path = os.path.join(dest, lora_name, "adapter_config.json")
    if not os.path.exists(config_path):
        return False
    with open(config_path) as f:
        config = json.load(f)
    return bool(config["peft_type"] == "LORA" and config["base_model_name_or_path"] == served_model)


def test_pull_lays_out_versions_and_moves_alias_links(reg: Registry, tmp_path: Path) -> None:
    service.add_base_model(reg, "tiny-llama", source=SOURCE)
    v1, _ = service.register_adapter(reg, make_lora(tmp_path / "a1", seed=1), "acme/math")
    v2, _ = service.register_adapter(reg, make_lora(tmp_path / "a2", seed=2), "acme/math")
    service.set_alias(reg, "acme/math@1", "prod")
    dest = tmp_path / "loras"
    local = LocalBackend(reg)

    refs, folder = local.pull("acme/math@prod", dest, link="prod", progress=_quiet)
    assert folder == dest / "acme" / f"math@{v1.sha256[:8]}" and refs.version == 1
    assert refs.vllm is not None and refs.vllm.lora_path == str(
        dest.resolve() / "acme" / f"math@{v1.sha256[:8]}"
    )
    link = dest / "acme" / "math@prod"
    assert link.is_symlink() and os.readlink(link) == folder.name
    assert _resolver_finds(dest, "acme/math@prod", SOURCE)
    assert _resolver_finds(dest, refs.vllm.lora_name, SOURCE)
    assert not _resolver_finds(dest, "acme/math@prod", "some-other-base")
    for name, entry in v1.files.items():  # everything but the config byte for byte as registered
        if name != "adapter_config.json":
            assert sha256_file(folder / name) == entry["sha256"], name
    record = json.loads((folder / ".pemreg.json").read_text())
    assert record["sha256"] == v1.sha256 and record["original_base_model_name_or_path"] == "tiny-llama"

    mtime = (folder / "adapter_model.safetensors").stat().st_mtime_ns
    local.pull("acme/math@1", dest, link="prod", progress=_quiet)  # already there: nothing downloaded
    assert (folder / "adapter_model.safetensors").stat().st_mtime_ns == mtime

    service.set_alias(reg, "acme/math@2", "prod")
    _, folder2 = local.pull("acme/math@prod", dest, link="prod", progress=_quiet)
    assert os.readlink(link) == folder2.name == f"math@{v2.sha256[:8]}" and folder.is_dir()

    (dest / "acme" / "math@staging").mkdir()  # not a link pemreg made: left alone, and said so
    from registry.errors import Conflict

    with pytest.raises(Conflict, match="not a link"):
        local.pull("acme/math@1", dest, link="staging", progress=_quiet)


def test_pull_command(reg: Registry, tmp_path: Path) -> None:
    service.add_base_model(reg, "tiny-llama", source=SOURCE)
    v, _ = service.register_adapter(reg, make_lora(tmp_path / "a", seed=1), "acme/cli")
    service.register_adapter(reg, make_ia3(tmp_path / "i", seed=2), "acme/scaled")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PEMREG_", "AWS_"))}
    env |= settings_env(reg) | {"COLUMNS": "200"}

    def pemreg(*args: str) -> subprocess.CompletedProcess[str]:
        return cli_inproc.pemreg(env, *args)  # in this process

    done = pemreg("adapters", "pull", "acme/cli", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert f"cli@{v.sha256[:8]}" in done.stdout and SOURCE in done.stdout
    assert (tmp_path / "out" / "acme" / "cli@latest").resolve().name == f"cli@{v.sha256[:8]}"
    refused = pemreg("adapters", "pull", "acme/scaled@1", str(tmp_path / "out"))
    assert refused.returncode == 1 and refused.stderr.startswith("error: ") and "LoRA" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    missing = pemreg("adapters", "pull", "acme/nope", str(tmp_path / "out"))
    assert missing.returncode == 1 and "acme/nope" in missing.stderr
