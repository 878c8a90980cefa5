"""Names, aliases and refs match their grammar in full at every entry point: a trailing newline or a
control character is refused (REST path, JSON body, multipart form, CLI), never a second `rel/abc`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from registry import service
from registry.catalog.migrate import upgrade
from registry.errors import InvalidInput
from registry.refs import Ref, parse_ref, validate_alias, validate_name
from registry.service import Registry
from registry.service.admin.keys import create_key
from registry.settings import Settings
from tests.catalog_helpers import snapshot

BAD_NAMES = ["rel/abc\n", "rel/abc\r", "rel/a\x00bc", "rel/ab\tc", "rel/abc\u2028", "rel/abc\n@1"]


@pytest.mark.parametrize("text", BAD_NAMES)
def test_grammar_is_full_match(text: str) -> None:
    for check in (validate_name, parse_ref, Ref.parse):
        with pytest.raises(InvalidInput):
            check(text)
    # A name is exact; a ref in an expression may carry the spaces around it, never other whitespace.
    with pytest.raises(InvalidInput):
        validate_name("rel/abc ")
    assert parse_ref(" rel/abc ") == Ref("rel", "abc")
    with pytest.raises(InvalidInput):
        validate_alias("prod\n")
    with pytest.raises(InvalidInput):
        parse_ref("rel/abc@prod\n")


@pytest.fixture
def api(tmp_path: Path, adapter_dirs: dict[str, Path]) -> Iterator[tuple[TestClient, Registry, str]]:
    settings = Settings(
        home=tmp_path / "home",
        database_url=f"sqlite:///{tmp_path / 'r.db'}",
        artifact_store=(tmp_path / "a").as_uri(),
        principal="names",
    )
    upgrade(settings.resolved_database_url)
    reg = Registry(settings)
    reg.store.ensure_ready()
    service.register_adapter(reg, adapter_dirs["lora"], "rel/abc")
    key = create_key(reg, "names-writer", "writer")
    with TestClient(create_app(settings)) as client:
        yield client, reg, key


def test_rest_entry_points_refuse_newlines(
    api: tuple[TestClient, Registry, str], adapter_dirs: dict[str, Path]
) -> None:
    client, reg, key = api
    h = {"Authorization": f"Bearer {key}"}
    before = snapshot(reg)
    folder = adapter_dirs["lora2"]
    files = {
        "config": ("adapter_config.json", (folder / "adapter_config.json").read_bytes()),
        "weights": ("adapter_model.safetensors", (folder / "adapter_model.safetensors").read_bytes()),
    }
    answers = {
        "alias prod%0A": client.put("/v1/adapters/rel/abc/aliases/prod%0A", json={"version": 1}, headers=h),
        "name path abc%0A": client.get("/v1/adapters/rel/abc%0A", headers=h),
        "version path 1%0A": client.get("/v1/adapters/rel/abc/versions/1%0A", headers=h),
        "json source name": client.post(
            "/v1/adapters", json={"source": "s3://bucket/x", "name": "rel/abc\n"}, headers=h
        ),
        "multipart name": client.post("/v1/adapters", data={"name": "rel/abc\n"}, files=files, headers=h),
        "multipart tag": client.post(
            "/v1/adapters", data={"name": "rel/abc", "tags": ["k=v\n"]}, files=files, headers=h
        ),
    }
    for what, response in answers.items():
        assert response.status_code == 422, (what, response.status_code, response.text)
        assert response.json()["detail"], what
    assert snapshot(reg) == before
    assert [a.name for a in service.list_adapters(reg).items] == ["rel/abc"]
