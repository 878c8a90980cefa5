"""Web tests share one seeded catalog per backend (seeding composes and registers: ~2 s)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from registry.catalog.migrate import upgrade
from registry.service import Registry
from registry.settings import Settings
from tests.web.seed import Seeded, seed_catalog


@pytest.fixture(scope="module")
def web_reg(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    tmp = tmp_path_factory.mktemp("web")
    settings = Settings(
        home=tmp / "home",
        database_url=f"sqlite:///{tmp / 'reg.db'}",
        artifact_store=(tmp / "artifacts").as_uri(),
        principal="tester",
        prefect_ui_url="http://127.0.0.1:4200",
    )
    upgrade(settings.resolved_database_url)
    reg = Registry(settings)
    reg.store.ensure_ready()
    return reg


@pytest.fixture(scope="module")
def seeded(web_reg: Registry, tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    return seed_catalog(web_reg, tmp_path_factory.mktemp("web-adapters"))


@pytest.fixture
def client(web_reg: Registry, seeded: Seeded) -> Iterator[TestClient]:
    with TestClient(create_app(web_reg.settings), follow_redirects=False) as c:
        yield c


def sign_in(client: TestClient, key: str) -> None:
    r = client.post("/signin", data={"key": key, "next": "/"})
    assert r.status_code == 303, r.text
