"""REST API fixtures (imported by the other test_api_* modules) and the app-wide behaviour: health,
request ids, the error shape, 500 without internals."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from registry import service
from registry.service import Registry
from registry.service.admin.keys import ROLES, create_key
from registry.settings import Settings
from tests.catalog_helpers import register_test_bases


@dataclass
class Api:
    client: TestClient
    reg: Registry
    keys: dict[str, str]  # role -> secret; each key is named "<role>-key"
    extra: dict[str, Any] = field(default_factory=dict)  # whatever a test's request builders need

    def h(self, role: str | None) -> dict[str, str]:
        if role is None:
            return {}
        secret = self.keys.get(role, "pemreg_00000000_not-a-real-key")
        return {"Authorization": f"Bearer {secret}"}


def make_api(reg: Registry, settings: Settings | None = None) -> Api:
    keys = {role: create_key(reg, f"{role}-key", role) for role in ROLES}
    register_test_bases(reg)
    return Api(TestClient(create_app(settings or reg.settings)), reg, keys)


@pytest.fixture(name="api")
def api_fixture(reg: Registry) -> Iterator[Api]:
    """The app over the `reg` fixture's backends (SQLite + file, PostgreSQL + SeaweedFS), a key per role."""
    made = make_api(reg)
    with made.client:
        yield made


def upload_files(folder: Path) -> dict[str, tuple[str, bytes]]:
    return {
        "config": ("adapter_config.json", (folder / "adapter_config.json").read_bytes()),
        "weights": ("adapter_model.safetensors", (folder / "adapter_model.safetensors").read_bytes()),
    }


def test_health_and_readiness_are_open(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok", "checks": {}}
    ready = api.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "store": "ok"}
    assert api.client.get("/openapi.json").json()["info"]["title"] == "PEM Registry"
    assert api.client.get("/docs").status_code == 200


def test_readyz_names_the_failing_dependency(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'missing' / 'x' / 'r.db'}",
        artifact_store=(tmp_path / "no-such-store").as_uri(),
    )
    client = TestClient(create_app(settings))
    (tmp_path / "missing").write_text("a file where the database folder should be")
    r = client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["checks"]["database"].startswith("unreachable")
    assert r.json()["checks"]["store"].startswith("unreachable")


def test_request_id_is_echoed_or_made(api: Api) -> None:
    echoed = api.client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    made = api.client.get("/healthz", headers={"X-Request-ID": "bad id\twith junk"}).headers["x-request-id"]
    assert made != "bad id\twith junk" and len(made) == 32


def test_unexpected_error_is_500_with_request_id_and_no_internals(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(*_a: object, **_k: object) -> None:
        raise RuntimeError("secret internal detail /etc/passwd")

    monkeypatch.setattr(service, "list_adapters", boom)
    r = api.client.get("/v1/adapters", headers=api.h("reader"))
    assert r.status_code == 500
    body = r.json()
    assert "secret" not in r.text and "Traceback" not in r.text
    assert body["request_id"] == r.headers["x-request-id"]
    assert any(body["request_id"] in rec.getMessage() for rec in caplog.records)  # logged with the id


def test_errors_name_the_field(api: Api) -> None:
    r = api.client.get("/v1/adapters", params={"limit": 0}, headers=api.h("reader"))
    assert r.status_code == 422 and r.json()["field"] == "limit"
    r = api.client.get("/v1/adapters", params={"page_token": "garbage!"}, headers=api.h("reader"))
    assert r.status_code == 422 and r.json()["field"] == "page_token"
    r = api.client.get("/v1/adapters/acme/nothing/versions/1", headers=api.h("reader"))
    assert r.status_code == 404 and "acme/nothing" in r.json()["detail"]
    r = api.client.get("/v1/adapters/Bad_NS/x/versions/1", headers=api.h("reader"))
    assert r.status_code == 422 and r.json()["field"] == "name"
    r = api.client.get("/v1/adapters/acme/x/versions/sha256:zz", headers=api.h("reader"))
    assert r.status_code == 422 and r.json()["field"] == "version"
    r = api.client.get("/v1/adapters", params={"page_token": "WyJ6eiJd"}, headers=api.h("reader"))  # ["zz"]
    assert r.status_code == 404 and r.json()["field"] == "page_token"


@pytest.mark.parametrize("action", ["archive", "deprecate", "restore"])
def test_version_actions_answer_405_to_other_methods(api: Api, action: str) -> None:
    """`versions/1:archive` is the POST action, never the version `1:archive` of GET/DELETE `versions/{v}`."""
    for method in ("GET", "DELETE", "PUT"):
        r = api.client.request(method, f"/v1/adapters/acme/x/versions/1:{action}", headers=api.h("admin"))
        assert r.status_code == 405 and r.headers["allow"] == "POST", (method, r.text)
    r = api.client.get("/v1/adapters/acme/x/versions/sha256:abcdef", headers=api.h("reader"))
    assert r.status_code == 404  # a digest selector still reaches GET versions/{v}
    r = api.client.get("/v1/adapters", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
