"""Sessions and keys, as the campaign attacked them: a cookie copied before sign-out must be refused
after it (the session ends on the server, not only in the browser), and a revoked key's name can be
given to a new key while the old key stays dead (and nothing it stored revives under the new one)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.web.session import COOKIE
from registry.catalog.migrate import upgrade
from registry.service import Registry
from registry.service.admin.keys import create_key, revoke_key
from registry.settings import Settings


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    settings = Settings(
        home=tmp_path / "home",
        database_url=f"sqlite:///{tmp_path / 'reg.db'}",
        artifact_store=(tmp_path / "artifacts").as_uri(),
        principal="ops",
    )
    upgrade(settings.resolved_database_url)
    registry = Registry(settings)
    registry.store.ensure_ready()
    return registry


@pytest.fixture
def client(reg: Registry) -> Iterator[TestClient]:
    with TestClient(create_app(reg.settings), follow_redirects=False) as c:
        yield c


def _csrf(html: str) -> str:
    marker = 'name="csrf" value="'
    return html.split(marker, 1)[1].split('"', 1)[0]


def test_a_cookie_replayed_after_sign_out_is_refused(reg: Registry, client: TestClient) -> None:
    key = create_key(reg, "alice", "reader")
    assert client.post("/signin", data={"key": key, "next": "/"}).status_code == 303
    stolen = client.cookies.get(COOKIE)
    assert stolen and client.get("/").status_code == 200
    assert client.post("/signout", data={"csrf": _csrf(client.get("/").text)}).status_code == 303
    with TestClient(create_app(reg.settings), follow_redirects=False) as attacker:
        attacker.cookies.set(COOKIE, stolen)
        replayed = attacker.get("/")
        assert replayed.status_code == 303 and replayed.headers["location"].startswith("/signin")
    # a new sign-in is a new session; the key itself still works
    assert client.post("/signin", data={"key": key, "next": "/"}).status_code == 303
    assert client.get("/").status_code == 200


def test_a_revoked_keys_name_can_be_reused_and_the_old_key_stays_dead(
    reg: Registry, client: TestClient
) -> None:
    old = create_key(reg, "ci-bot", "writer")
    assert client.get("/v1/adapters", headers={"Authorization": f"Bearer {old}"}).status_code == 200
    revoke_key(reg, "ci-bot")
    new = create_key(reg, "ci-bot", "reader")  # the campaign saw 409 here
    assert client.get("/v1/adapters", headers={"Authorization": f"Bearer {old}"}).status_code == 401
    assert client.get("/v1/adapters", headers={"Authorization": f"Bearer {new}"}).status_code == 200
    with pytest.raises(Exception, match="active API key named 'ci-bot' exists"):
        create_key(reg, "ci-bot", "reader")
    admin = create_key(reg, "root", "admin")
    listed = client.get("/v1/keys", headers={"Authorization": f"Bearer {admin}"}).json()
    assert sorted(
        (k["name"], k["role"], k["revoked_at"] is None) for k in listed if k["name"] == "ci-bot"
    ) == [
        ("ci-bot", "reader", True),
        ("ci-bot", "writer", False),
    ]
    # revoking by name revokes the active one
    revoke_key(reg, "ci-bot")
    assert client.get("/v1/adapters", headers={"Authorization": f"Bearer {new}"}).status_code == 401
