"""Composition endpoints: trigger -> poll -> succeeded -> lineage with weights; dry run; roles; errors."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry import service
from registry.service import Registry
from tests.adapters_fixtures import copy_of
from tests.factories import make_ia3, make_lora, save_tiny_base
from tests.test_api_common import Api, make_api

SPEC = {"name": "t/ab", "expression": "0.25 * t/a + 0.75 * t/b", "output": {"aliases": ["candidate"]}}


@pytest.fixture
def capi(reg: Registry, warm_home: tuple[Path, int], tmp_path: Path) -> Iterator[Api]:
    home, port = warm_home
    settings = reg.settings.model_copy(
        update={"home": home, "local_prefect_port": port, "prefect_mode": "local-server"}
    )
    reg = Registry(settings)
    # The same folders for every test: made once per process, copied (tests/adapters_fixtures.py)
    service.add_base_model(reg, "tiny-llama", source=str(copy_of(save_tiny_base, tmp_path / "base")))
    service.register_adapter(reg, copy_of(make_lora, tmp_path / "a", seed=1), "t/a")
    service.register_adapter(reg, copy_of(make_lora, tmp_path / "b", seed=2), "t/b")
    service.register_adapter(reg, copy_of(make_ia3, tmp_path / "i", seed=3), "t/i")
    service.register_adapter(reg, copy_of(make_lora, tmp_path / "r8", seed=4, r=8), "t/r8")
    made = make_api(reg, settings)
    with made.client:
        yield made


def _poll(api: Api, composition_id: str) -> dict:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        body = api.client.get(f"/v1/compositions/{composition_id}", headers=api.h("reader")).json()
        if body["status"] in ("succeeded", "failed", "rejected"):
            return body
        time.sleep(0.3)
    raise AssertionError(f"composition {composition_id} did not finish: {body}")


def test_trigger_poll_lineage(capi: Api) -> None:
    r = capi.client.post("/v1/compositions", json=SPEC, headers=capi.h("writer"))
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "pending" and body["id"]
    done = _poll(capi, body["id"])
    assert done["status"] == "succeeded", done
    assert done["error"] is None and done["flow_run_id"]
    assert done["output"]["name"] == "t/ab" and done["output"]["version"] == 1
    lineage = capi.client.get("/v1/adapters/t/ab/versions/candidate/lineage", headers=capi.h("reader")).json()
    assert {(e["parent"], e["operator"], e["weight"]) for e in lineage["edges"]} == {
        ("t/a@1", "linear", 0.25),
        ("t/b@1", "linear", 0.75),
    }
    listed = capi.client.get("/v1/compositions?status=succeeded", headers=capi.h("reader")).json()
    assert [c["id"] for c in listed["items"]] == [body["id"]] and listed["next_page_token"] is None
    by_prefix = capi.client.get(f"/v1/compositions/{body['id'][:6]}", headers=capi.h("reader")).json()
    assert by_prefix["id"] == body["id"]
    events = capi.client.get("/v1/audit?actor=key:writer-key", headers=capi.h("reader")).json()
    assert "compose_trigger" in {
        e["action"] for e in (events["items"] if isinstance(events, dict) else events)
    }


def test_yaml_body_and_dry_run(capi: Api) -> None:
    yaml_spec = "name: t/dry\nexpression: 't/a - t/b'\n"
    r = capi.client.post(
        "/v1/compositions:validate",
        content=yaml_spec,
        headers={**capi.h("writer"), "Content-Type": "application/yaml"},
    )
    assert r.status_code == 200, r.text
    report = r.json()
    assert [(i["name"], i["weight"]) for i in report["inputs"]] == [("t/a", 1.0), ("t/b", -1.0)]
    assert len(report["interference"]["pairs"]) == 1
    assert capi.client.get("/v1/compositions", headers=capi.h("reader")).json()["items"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "t/x", "expression": "t/a +"}, "expression"),
        ({"name": "t/x", "expression": "t/a", "method": "ties"}, "density"),
        ({"name": "t/x", "expression": "t/a", "bogus": 1}, "bogus"),
        ({"name": "t/x", "expression": "t/missing"}, None),
    ],
)
def test_bad_specs_are_4xx_naming_the_problem(capi: Api, body: dict, field: str | None) -> None:
    r = capi.client.post("/v1/compositions", json=body, headers=capi.h("writer"))
    assert 400 <= r.status_code < 500, r.text
    detail = r.json()["detail"]
    assert (field or "t/missing") in detail
    assert capi.client.get("/v1/compositions", headers=capi.h("reader")).json()["items"] == []


def test_incompatible_inputs_are_422(capi: Api) -> None:
    r = capi.client.post(
        "/v1/compositions", json={"name": "t/x", "expression": "t/a + t/i"}, headers=capi.h("writer")
    )
    assert r.status_code == 422 and "PEM types" in r.json()["detail"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"name": "t/x", "expression": "t/a + t/r8"}, "rank"),  # ranks differ under linear
        ({"name": "t/x", "method": "delta_svd", "rank": 100000, "expression": "t/a + t/b"}, "min(d, k)"),
    ],
)
def test_post_refuses_what_validate_refuses(capi: Api, body: dict, needle: str) -> None:
    """POST /v1/compositions runs every check of :validate before answering 202."""
    validate = capi.client.post("/v1/compositions:validate", json=body, headers=capi.h("writer"))
    post = capi.client.post("/v1/compositions", json=body, headers=capi.h("writer"))
    assert validate.status_code == post.status_code == 422, (validate.text, post.text)
    assert needle in post.json()["detail"] and post.json()["detail"] == validate.json()["detail"]
    assert capi.client.get("/v1/compositions", headers=capi.h("reader")).json()["items"] == []


def test_cache_hit_and_paging_and_prefixes(capi: Api) -> None:
    first = capi.client.post("/v1/compositions", json=SPEC, headers=capi.h("writer")).json()
    assert _poll(capi, first["id"])["status"] == "succeeded"
    hit = capi.client.post("/v1/compositions", json=SPEC, headers=capi.h("writer"))
    assert hit.status_code == 202
    body = hit.json()
    assert body["status"] == "succeeded" and body["cache_hit"] is True and body["flow_run_id"] is None
    assert body["cache_key"] == _poll(capi, first["id"])["cache_key"] and body["id"] != first["id"]
    page = capi.client.get("/v1/compositions?limit=1", headers=capi.h("reader")).json()
    assert [c["id"] for c in page["items"]] == [body["id"]] and page["next_page_token"]
    rest = capi.client.get(
        f"/v1/compositions?limit=1&page_token={page['next_page_token']}", headers=capi.h("reader")
    ).json()
    assert [c["id"] for c in rest["items"]] == [first["id"]] and rest["next_page_token"] is None
    bad = capi.client.get("/v1/compositions?page_token=zz!", headers=capi.h("reader"))
    assert bad.status_code == 422 and bad.json()["field"] == "page_token"
    # Well-formed, but not a position of this listing (an adapters token): no such page.
    foreign = capi.client.get("/v1/adapters?limit=1", headers=capi.h("reader")).json()["next_page_token"]
    assert foreign
    nowhere = capi.client.get(f"/v1/compositions?page_token={foreign}", headers=capi.h("reader"))
    assert nowhere.status_code == 404 and nowhere.json()["field"] == "page_token"
    first_page = capi.client.get("/v1/compositions?limit=1&page_token=", headers=capi.h("reader")).json()
    assert first_page["items"] == page["items"]


@pytest.mark.parametrize(
    ("method", "path", "role", "status"),
    [
        ("post", "/v1/compositions", None, 401),
        ("post", "/v1/compositions", "reader", 403),
        ("post", "/v1/compositions:validate", "reader", 403),
        ("get", "/v1/compositions", None, 401),
        ("get", "/v1/compositions", "reader", 200),
        ("get", "/v1/compositions/nope", "reader", 404),
    ],
)
def test_composition_roles(capi: Api, method: str, path: str, role: str | None, status: int) -> None:
    kwargs = {"json": SPEC} if method == "post" else {}
    r = getattr(capi.client, method)(path, headers=capi.h(role), **kwargs)
    assert r.status_code == status, r.text
