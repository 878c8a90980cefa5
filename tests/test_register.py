"""Service layer on both backend pairs: register, idempotency, aliases, search, download, digest lookup."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from registry import service
from registry.errors import AdapterFormatError, Conflict, InvalidInput, NotFound
from registry.hashing import digest_of, sha256_file
from registry.service import Registry
from tests.catalog_helpers import snapshot


def test_register_is_content_addressed_and_idempotent(reg: Registry, adapter_dirs: dict[str, Path]) -> None:
    v1, created = service.register_adapter(
        reg, adapter_dirs["lora"], "acme/math", task="math", tags={"team": "a"}
    )
    assert created and v1.version == 1
    assert v1.sha256 == sha256_file(adapter_dirs["lora"] / "adapter_model.safetensors")
    keys = reg.store.list_keys(f"adapters/acme/math/{v1.sha256}")
    assert {k.rsplit("/", 1)[-1] for k in keys} == {
        "adapter_config.json",
        "adapter_model.safetensors",
        "README.md",  # the folder's own (peft writes one), byte-identical
        "MODEL_CARD.md",  # the registry's card, beside it
        "provenance.json",
    }
    before = snapshot(reg)
    again, created = service.register_adapter(reg, adapter_dirs["lora"], "acme/math")
    assert not created and again.version == 1 and again.sha256 == v1.sha256
    assert snapshot(reg) == before
    v2, created = service.register_adapter(reg, adapter_dirs["lora2"], "acme/math")
    assert created and v2.version == 2
    assert service.get_version(reg, "acme/math").version == 2  # latest
    assert service.get_version(reg, f"acme/math@sha256:{v1.sha256[:10]}").version == 1


def test_model_card_and_provenance(reg: Registry, adapter_dirs: dict[str, Path], tmp_path: Path) -> None:
    v, _ = service.register_adapter(reg, adapter_dirs["lora"], "acme/card", task="math")
    _, files = service.download_version(reg, "acme/card@1", tmp_path / "dl")
    # the folder brought its own README.md: kept byte-identical; the registry's card is MODEL_CARD.md
    assert (tmp_path / "dl" / "README.md").read_bytes() == (adapter_dirs["lora"] / "README.md").read_bytes()
    card = (tmp_path / "dl" / "MODEL_CARD.md").read_text()
    assert (
        card.startswith("---\n")
        and "base_model: tiny-llama" in card
        and "base_model_relation: adapter" in card
    )
    assert "library_name: peft" in card
    prov = json.loads((tmp_path / "dl" / "provenance.json").read_text())
    assert prov["schema"] == "pemreg.provenance/v1"
    subject = {s["name"]: s["digest"]["sha256"] for s in prov["subject"]}
    assert subject["adapter_model.safetensors"] == v.sha256
    assert subject["adapter_config.json"] == sha256_file(tmp_path / "dl" / "adapter_config.json")
    assert prov["environment"]["packages"]["torch"]


def test_download_is_byte_identical(reg: Registry, adapter_dirs: dict[str, Path], tmp_path: Path) -> None:
    service.register_adapter(reg, adapter_dirs["ia3"], "acme/style")
    _, files = service.download_version(reg, "acme/style@1", tmp_path / "out")
    for name in ("adapter_model.safetensors", "adapter_config.json", "README.md"):
        assert (tmp_path / "out" / name).read_bytes() == (adapter_dirs["ia3"] / name).read_bytes()
    assert sorted(f.name for f in files) == [
        "MODEL_CARD.md",
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
        "provenance.json",
    ]


def test_aliases_move_and_are_audited(reg: Registry, adapter_dirs: dict[str, Path]) -> None:
    service.register_adapter(reg, adapter_dirs["lora"], "acme/a")
    service.register_adapter(reg, adapter_dirs["lora2"], "acme/a")
    assert service.set_alias(reg, "acme/a@1", "prod").version == 1
    assert service.get_version(reg, "acme/a@prod").version == 1
    service.set_alias(reg, "acme/a@2", "prod")
    assert service.get_version(reg, "acme/a@prod").version == 2
    moves = [e for e in service.list_events(reg, subject="acme/a@prod") if e.action == "alias_move"]
    assert [(e.details["from_version"], e.details["to_version"]) for e in moves] == [(1, 2), (None, 1)]
    with pytest.raises(InvalidInput, match="latest"):
        service.set_alias(reg, "acme/a@1", "latest")
    with pytest.raises(NotFound):
        service.get_version(reg, "acme/a@staging")


def test_list_filters_and_keyset_pagination(reg: Registry, adapter_dirs: dict[str, Path]) -> None:
    service.register_adapter(
        reg, adapter_dirs["lora"], "acme/math", task="math", tags={"team": "a", "lang": "en"}
    )
    service.register_adapter(
        reg,
        adapter_dirs["lora2"],
        "acme/medicine",
        task="medicine",
        tags={"team": "b"},
        description="Clinical notes",
    )
    service.register_adapter(reg, adapter_dirs["ia3"], "beta/style", task="style", tags={"team": "a"})
    service.register_adapter(reg, adapter_dirs["lora_gpt2"], "beta/gpt", task="math")

    def names(**kw: object) -> list[str]:
        return [a.name for a in service.list_adapters(reg, **kw).items]  # type: ignore[arg-type]

    assert names() == ["acme/math", "acme/medicine", "beta/gpt", "beta/style"]
    assert names(pem_type="ia3") == ["beta/style"]
    assert names(task="math") == ["acme/math", "beta/gpt"]
    assert names(tags={"team": "a"}) == ["acme/math", "beta/style"]
    assert names(tags={"team": "a", "lang": "en"}) == ["acme/math"]
    assert names(query="clinical") == ["acme/medicine"]
    assert names(base_model="tiny-gpt2") == ["beta/gpt"]
    seen, token = [], None
    while True:
        page = service.list_adapters(reg, limit=1, page_token=token)
        seen += [a.name for a in page.items]
        token = page.next_page_token
        if token is None:
            break
    assert seen == names()
    with pytest.raises(InvalidInput, match="page_token"):
        service.list_adapters(reg, page_token="garbage!")


def test_lookup_by_digest(reg: Registry, adapter_dirs: dict[str, Path]) -> None:
    v, _ = service.register_adapter(reg, adapter_dirs["lora"], "acme/math")
    weights = adapter_dirs["lora"] / "adapter_model.safetensors"
    [match] = service.find_by_digest(reg, digest_of(str(weights)))
    assert (match.kind, match.name, match.version, match.file) == (
        "adapter_version",
        "acme/math",
        1,
        "adapter_model.safetensors",
    )
    [by_config] = service.find_by_digest(reg, sha256_file(adapter_dirs["lora"] / "adapter_config.json"))
    assert by_config.file == "adapter_config.json" and by_config.version == v.version
    with pytest.raises(NotFound):
        service.find_by_digest(reg, "0" * 64)


def test_bad_input_changes_nothing(reg: Registry, adapter_dirs: dict[str, Path], tmp_path: Path) -> None:
    service.register_adapter(reg, adapter_dirs["lora"], "acme/math")
    before = snapshot(reg)
    broken = tmp_path / "broken"
    shutil.copytree(adapter_dirs["lora2"], broken)
    tensors = load_file(broken / "adapter_model.safetensors")
    tensors[sorted(tensors)[0]][0, 0] = float("inf")
    save_file(tensors, broken / "adapter_model.safetensors")
    with pytest.raises(AdapterFormatError, match="Inf"):
        service.register_adapter(reg, broken, "acme/math")
    with pytest.raises(InvalidInput, match="name"):
        service.register_adapter(reg, adapter_dirs["lora2"], "Not A Name")
    with pytest.raises(Conflict, match="lora"):
        service.register_adapter(reg, adapter_dirs["ia3"], "acme/math")  # an (IA)3 under a LoRA name
    with pytest.raises(Conflict, match="base model"):
        service.register_adapter(reg, adapter_dirs["lora_gpt2"], "acme/math")  # another base model
    with pytest.raises(AdapterFormatError):
        service.register_adapter(reg, tmp_path / "nope", "acme/other")
    assert snapshot(reg) == before


def test_base_models(reg: Registry, tmp_path: Path) -> None:
    from tests.factories import save_tiny_base

    folder = save_tiny_base(tmp_path / "base", "gpt2")
    view, created = service.add_base_model(reg, "tiny-gpt2", source=str(folder))
    assert created and view.architecture == "GPT2LMHeadModel"
    assert service.add_base_model(reg, "tiny-gpt2", source=str(folder))[1] is False
    with pytest.raises(Conflict, match="source"):
        service.add_base_model(reg, "tiny-gpt2", source="elsewhere")
    assert [b.name for b in service.list_base_models(reg)] == ["tiny-gpt2"]


def test_unknown_home_in_a_path_is_input_not_a_crash(reg: Registry) -> None:
    # Found by schemathesis: Path("~o...").expanduser() raises RuntimeError for an unknown user.
    view, created = service.add_base_model(reg, "hub-model", source="~nosuchuser-x/model")
    assert created and view.architecture is None
    with pytest.raises(InvalidInput, match="no such file"):
        digest_of("~nosuchuser-x/adapter_model.safetensors")
    with pytest.raises(AdapterFormatError):
        service.register_adapter(reg, "~nosuchuser-x/adapter", "acme/x")
