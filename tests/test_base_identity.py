"""One identity per base model: found by name, by normalised source, or by weights digest; a named
`--base-model` must exist; auto-registration only for an unmatched hub id, and it says so; shapes
checked against the base's config.json at registration when the base is a local folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import LlamaConfig

from registry import service
from registry.catalog.migrate import upgrade
from registry.errors import AdapterFormatError, InvalidInput, NotFound
from registry.hashing import sha256_file
from registry.service import Registry
from registry.settings import Settings
from tests.catalog_helpers import snapshot
from tests.factories import make_lora, save_tiny_base


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    settings = Settings(
        home=tmp_path / "home",
        database_url=f"sqlite:///{tmp_path / 'r.db'}",
        artifact_store=(tmp_path / "a").as_uri(),
        principal="bases",
    )
    upgrade(settings.resolved_database_url)
    registry = Registry(settings)
    registry.store.ensure_ready()
    return registry


def _lora_for(tmp_path: Path, base: str, name: str = "lora", seed: int = 1) -> Path:
    folder = make_lora(tmp_path / name, seed=seed)
    config = json.loads((folder / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = base
    (folder / "adapter_config.json").write_text(json.dumps(config))
    return folder


def _base_names(reg: Registry) -> list[str]:
    return sorted(b.name for b in service.list_base_models(reg))


def test_config_path_binds_to_base_registered_with_that_source(
    reg: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    save_tiny_base(tmp_path / "my-base")
    view, created = service.add_base_model(reg, "tiny-llama", source="./my-base/")
    assert created and view.source == str((tmp_path / "my-base").resolve())
    assert view.architecture == "LlamaForCausalLM"
    notes: list[str] = []
    version, _ = service.register_adapter(
        reg, _lora_for(tmp_path, "./my-base"), "acme/x", notify=notes.append
    )
    assert version.base_model == "tiny-llama" and notes == []
    # The absolute spelling and a trailing slash are the same source.
    other, _ = service.register_adapter(
        reg, _lora_for(tmp_path, f"{tmp_path}/my-base/", "l2", seed=2), "acme/y", notify=notes.append
    )
    assert other.base_model == "tiny-llama" and _base_names(reg) == ["tiny-llama"]
    with pytest.raises(Exception, match="already registered as base model tiny-llama"):
        service.add_base_model(reg, "another-name", source=str(tmp_path / "my-base"))


def test_named_base_must_exist_and_errors_list_near_matches(reg: Registry, tmp_path: Path) -> None:
    service.add_base_model(reg, "tiny-llama", source="tiny-llama")
    before = snapshot(reg)
    with pytest.raises(NotFound, match=r"'tiny-lama' is not registered; did you mean tiny-llama"):
        service.register_adapter(reg, _lora_for(tmp_path, "tiny-llama"), "acme/x", base_model="tiny-lama")
    assert snapshot(reg) == before


def test_auto_registration_only_for_unmatched_hub_id_and_says_so(reg: Registry, tmp_path: Path) -> None:
    notes: list[str] = []
    service.register_adapter(reg, _lora_for(tmp_path, "org/new-base"), "acme/x", notify=notes.append)
    assert _base_names(reg) == ["org/new-base"]
    assert len(notes) == 1 and "org/new-base@main was not registered; registered it" in notes[0]
    before = snapshot(reg)
    for i, path in enumerate(["../../../../etc", "/etc", "./not-registered", "~/x"]):
        with pytest.raises(InvalidInput, match="local path that matches no registered base"):
            service.register_adapter(reg, _lora_for(tmp_path, path, f"p{i}", seed=10 + i), "acme/p")
    assert snapshot(reg) == before


def test_base_found_by_weights_digest(reg: Registry, tmp_path: Path) -> None:
    folder = save_tiny_base(tmp_path / "copy-of-base")
    digest = sha256_file(folder / "model.safetensors")
    service.add_base_model(reg, "tiny-llama", source="s3://models/tiny-llama", sha256=digest)
    version, _ = service.register_adapter(reg, _lora_for(tmp_path, str(folder)), "acme/x")
    assert version.base_model == "tiny-llama" and _base_names(reg) == ["tiny-llama"]


def test_shapes_checked_against_base_config(reg: Registry, tmp_path: Path) -> None:
    wide = tmp_path / "wide-base"
    LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        vocab_size=128,
        architectures=["LlamaForCausalLM"],
    ).save_pretrained(wide)
    service.add_base_model(reg, "wide-llama", source=str(wide))
    before = snapshot(reg)
    with pytest.raises(
        AdapterFormatError, match=r"module 'model\.layers\.0\.self_attn\.\w_proj'.*wide-llama@main"
    ):
        service.register_adapter(reg, _lora_for(tmp_path, "tiny"), "acme/x", base_model="wide-llama")
    assert snapshot(reg) == before
    # The same LoRA fits a width-32 base: accepted.
    narrow = save_tiny_base(tmp_path / "narrow-base")
    service.add_base_model(reg, "tiny-llama", source=str(narrow))
    version, created = service.register_adapter(
        reg, _lora_for(tmp_path, "tiny", "l2"), "acme/x", base_model="tiny-llama"
    )
    assert created and version.base_model == "tiny-llama"
