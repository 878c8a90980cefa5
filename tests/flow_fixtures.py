"""A registry with a base model and peft-made input adapters, wired to the flows through PEMREG_* env."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from registry import service
from registry.service import Registry
from tests.adapters_fixtures import copy_of
from tests.factories import make_ia3, make_lora, save_tiny_base

TEXTS = ["the cat sat on the mat", "numbers: 1 2 3 4 5 6", "hello world, hello tests", "a b c d e f g h"]


@dataclass
class World:
    reg: Registry
    tmp: Path
    ppl_data: str  # file:// URI of a {"text"} jsonl
    acc_data: str  # file:// URI of a {"text","label"} jsonl


def settings_env(reg: Registry) -> dict[str, str]:
    s = reg.settings
    env = {
        "PEMREG_HOME": str(s.home),
        "PEMREG_DATABASE_URL": s.resolved_database_url,
        "PEMREG_ARTIFACT_STORE": s.resolved_artifact_store,
        "PEMREG_PRINCIPAL": s.principal,
    }
    for key, value in (
        ("S3_ENDPOINT_URL", s.s3_endpoint_url),
        ("S3_REGION", s.s3_region),
        ("S3_ACCESS_KEY_ID", s.s3_access_key_id),
        ("S3_SECRET_ACCESS_KEY", s.s3_secret_access_key),
    ):
        if value:
            env[f"PEMREG_{key}"] = value
    return env


@pytest.fixture
def world(reg: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_harness: None) -> World:
    for key, value in settings_env(reg).items():
        monkeypatch.setenv(key, value)
    # The same folders for every test, made once per process and copied here (tests may change them).
    base = copy_of(save_tiny_base, tmp_path / "base", "llama")
    service.add_base_model(reg, "tiny-llama", source=str(base))
    service.register_adapter(reg, copy_of(make_lora, tmp_path / "a", seed=1), "t/a")
    service.register_adapter(reg, copy_of(make_lora, tmp_path / "b", seed=2), "t/b")
    service.register_adapter(reg, copy_of(make_lora, tmp_path / "a2", seed=3), "t/a")  # t/a@2
    service.register_adapter(reg, copy_of(make_ia3, tmp_path / "i", seed=4), "t/i")
    service.register_adapter(reg, copy_of(make_ia3, tmp_path / "j", seed=5), "t/j")
    ppl = tmp_path / "ppl.jsonl"
    ppl.write_text("\n".join(json.dumps({"text": t}) for t in TEXTS))
    acc = tmp_path / "acc.jsonl"
    acc.write_text(
        "\n".join(
            json.dumps({"text": t, "label": lab})
            for t, lab in [("the cat is", "yes"), ("one two", "no"), ("hello", "yes"), ("a b", "no")]
        )
    )
    return World(reg, tmp_path, ppl.as_uri(), acc.as_uri())
