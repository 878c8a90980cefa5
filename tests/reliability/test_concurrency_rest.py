"""Concurrent writers over HTTP on PostgreSQL: 20 PUTs creating one NEW alias at once, and parallel
uploads (new and repeated bytes, one new base model) of one adapter name: no 5xx, no lost update."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from registry import service
from registry.service import Registry
from registry.service.admin.keys import create_key
from registry.settings import Settings
from tests.factories import make_lora
from tests.pg_service import truncate_all
from tests.reliability.live_server import serve

pytestmark = pytest.mark.postgres
ALIAS_WRITERS = 20
UPLOADERS = 10


@pytest.fixture
def live(pg_url: str, tmp_path: Path) -> Iterator[tuple[str, str, Registry]]:
    settings = Settings(
        home=tmp_path / "home",
        database_url=pg_url,
        artifact_store=(tmp_path / "store").as_uri(),
        principal="race",
    )
    reg = Registry(settings)
    reg.store.ensure_ready()
    key = create_key(reg, "race-writer", "writer")
    with serve(settings) as url:
        yield url, key, reg
    truncate_all(pg_url)


def test_concurrent_new_alias(live: tuple[str, str, Registry], tmp_path: Path) -> None:
    url, key, reg = live
    for seed in (1, 2):
        service.register_adapter(reg, make_lora(tmp_path / f"l{seed}", seed=seed), "race/alias")
    headers = {"Authorization": f"Bearer {key}"}

    def put(i: int) -> int:
        body = {"version": 1 + i % 2}
        with httpx.Client(base_url=url, timeout=30) as client:
            return client.put("/v1/adapters/race/alias/aliases/prod", json=body, headers=headers).status_code

    with ThreadPoolExecutor(ALIAS_WRITERS) as pool:
        statuses = list(pool.map(put, range(ALIAS_WRITERS)))
    fives = sum(s >= 500 for s in statuses)
    print(f"alias PUTs: {ALIAS_WRITERS}, statuses {sorted(set(statuses))}, 5xx: {fives}")
    assert statuses == [200] * ALIAS_WRITERS
    shown = service.show_adapter(reg, "race/alias")
    assert set(shown.aliases) == {"prod"}
    moves = [e for e in service.list_events(reg, subject="race/alias@prod") if e.action == "alias_move"]
    assert 1 <= len(moves) <= ALIAS_WRITERS  # the creation is audited once; later PUTs that move it, too
    assert moves[-1].details["from_version"] is None  # exactly one writer created it


def test_concurrent_uploads_one_name(live: tuple[str, str, Registry], tmp_path: Path) -> None:
    url, key, reg = live
    folders = []
    for i in range(UPLOADERS // 2):
        folder = make_lora(tmp_path / f"u{i}", seed=100 + i)
        config = json.loads((folder / "adapter_config.json").read_text())
        config["base_model_name_or_path"] = "race-base"  # unregistered: the first upload registers it
        # (asked for: create_base=true; REST never registers a base unasked)
        (folder / "adapter_config.json").write_text(json.dumps(config))
        folders.append(folder)
    jobs = folders + folders  # every payload twice: idempotent under the race

    def upload(folder: Path) -> tuple[int, dict[str, object]]:
        files = {
            "config": ("adapter_config.json", (folder / "adapter_config.json").read_bytes()),
            "weights": ("adapter_model.safetensors", (folder / "adapter_model.safetensors").read_bytes()),
        }
        with httpx.Client(base_url=url, timeout=60) as client:
            r = client.post(
                "/v1/adapters",
                data={"name": "race/upload", "create_base": "true"},
                files=files,
                headers={"Authorization": f"Bearer {key}"},
            )
            return r.status_code, r.json()

    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(upload, jobs))
    statuses = [s for s, _ in results]
    print(f"uploads: {len(jobs)}, statuses {sorted(set(statuses))}, 5xx: {sum(s >= 500 for s in statuses)}")
    assert all(s in (200, 201) for s in statuses), results
    assert statuses.count(201) == len(folders)
    versions = {str(b["sha256"]): b["version"] for _, b in results}
    assert sorted(versions.values()) == list(range(1, len(folders) + 1))
    bases = [b for b in service.list_base_models(reg) if b.name == "race-base"]
    assert len(bases) == 1
