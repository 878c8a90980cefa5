"""Registration over HTTP (multipart and s3:// source), listing, downloads, aliases and audit, on both
backend pairs (SQLite + file store, PostgreSQL + SeaweedFS)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import pytest

from registry.settings import Settings
from tests.catalog_helpers import snapshot
from tests.s3_service import S3Service
from tests.test_api_common import Api, api_fixture, make_api, upload_files  # noqa: F401

WEIGHTS = "adapter_model.safetensors"


def _upload(api: Api, folder: Path, name: str, role: str = "writer", **data: object) -> httpx.Response:
    return api.client.post(
        "/v1/adapters", headers=api.h(role), files=upload_files(folder), data={"name": name, **data}
    )


def _download(api: Api, url: str, **params: str) -> bytes:
    """The bytes behind a download URL: a 307 to a presigned S3 URL is fetched without our key."""
    # No empty params: httpx would replace the query string the URL already carries.
    r = api.client.get(url, headers=api.h("reader"), params=params or None, follow_redirects=False)
    if r.status_code == 307:
        fetched = httpx.get(r.headers["location"])
        assert fetched.status_code == 200
        assert hashlib.sha256(fetched.content).hexdigest() == r.headers["x-content-sha256"]
        return fetched.content
    assert r.status_code == 200, r.text
    assert hashlib.sha256(r.content).hexdigest() == r.headers["x-content-sha256"]
    return r.content


def test_upload_list_download_byte_identical(api: Api, adapter_dirs: dict[str, Path]) -> None:
    lora = adapter_dirs["lora"]
    r = _upload(api, lora, "acme/math", task="math", tags=["team=nlp", "tier=gold"], description="sums")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["name"] == "acme/math" and body["version"] == 1 and body["created"] is True
    assert body["sha256"] == hashlib.sha256((lora / WEIGHTS).read_bytes()).hexdigest()
    assert body["created_by"] == "key:writer-key"

    reader = api.h("reader")
    listed = api.client.get("/v1/adapters", params={"tag": "team:nlp", "task": "math"}, headers=reader)
    [item] = listed.json()["items"]
    assert item["name"] == "acme/math" and item["tags"] == {"team": "nlp", "tier": "gold"}
    assert item["latest_version"] == 1
    assert api.client.get("/v1/adapters", params={"q": "sums"}, headers=api.h("reader")).json()["items"]
    assert not api.client.get("/v1/adapters", params={"tag": "team=cv"}, headers=reader).json()["items"]

    version_url = "/v1/adapters/acme/math/versions/1/download"
    assert _download(api, version_url) == (lora / WEIGHTS).read_bytes()
    config = (lora / "adapter_config.json").read_bytes()
    assert _download(api, version_url, file="adapter_config.json") == config
    manifest = api.client.get(version_url, params={"redirect": "false"}, headers=api.h("reader")).json()
    assert {f["file"] for f in manifest["files"]} == {
        WEIGHTS,
        "adapter_config.json",
        "README.md",
        "provenance.json",
    }
    for entry in manifest["files"]:
        if entry["url"].startswith("http://testserver"):  # file store: our own streaming URL
            data = _download(api, entry["url"].removeprefix("http://testserver"))
        else:
            data = httpx.get(entry["url"]).content
        assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["size"]
    missing = api.client.get(version_url, params={"file": "../../etc/passwd"}, headers=api.h("reader"))
    assert missing.status_code == 404 and missing.json()["detail"].startswith("file:")


def test_reupload_is_idempotent(api: Api, adapter_dirs: dict[str, Path]) -> None:
    assert _upload(api, adapter_dirs["lora"], "acme/idem").status_code == 201
    before = snapshot(api.reg)
    again = _upload(api, adapter_dirs["lora"], "acme/idem")
    assert again.status_code == 200 and again.json()["version"] == 1 and again.json()["created"] is False
    assert snapshot(api.reg) == before
    second = _upload(api, adapter_dirs["lora2"], "acme/idem")
    assert second.status_code == 201 and second.json()["version"] == 2


def _bad_config(folder: Path) -> dict[str, tuple[str, bytes]]:
    files = upload_files(folder)
    files["config"] = ("adapter_config.json", b"{not json")
    return files


def _bad_weights(folder: Path) -> dict[str, tuple[str, bytes]]:
    files = upload_files(folder)
    files["weights"] = (WEIGHTS, b"\x08\x00\x00\x00\x00\x00\x00\x00garbage!")
    return files


@pytest.mark.parametrize(
    ("case", "field"),
    [
        ("no_name", "name"),
        ("bad_name", "name"),
        ("no_weights", "weights"),
        ("no_config", "config"),
        ("bad_config", None),
        ("bad_weights", None),
        ("unknown_field", "colour"),
        ("sha_mismatch", "weights"),
        ("bad_tag", "tags"),
        ("not_multipart", "content-type"),
        ("bad_json", "source"),
        ("json_local_path", "source"),
        ("wrong_pem_type", None),
    ],
)
def test_bad_uploads_are_4xx_and_store_nothing(
    api: Api, adapter_dirs: dict[str, Path], case: str, field: str | None
) -> None:
    lora = adapter_dirs["lora"]
    h = api.h("writer")
    if case == "wrong_pem_type":  # acme/x holds LoRAs; an (IA)3 upload under that name conflicts
        assert _upload(api, lora, "acme/x").status_code == 201
    before = snapshot(api.reg)
    files = upload_files(lora)
    y = {"name": "acme/y"}

    def post(**kwargs: object) -> httpx.Response:
        return api.client.post("/v1/adapters", headers={**h, **kwargs.pop("headers", {})}, **kwargs)  # type: ignore

    r = {
        "no_name": lambda: post(files=files),
        "bad_name": lambda: post(files=files, data={"name": "Not A Name"}),
        "no_weights": lambda: post(files={"config": files["config"]}, data={"name": "acme/x"}),
        "no_config": lambda: post(files={"weights": files["weights"]}, data={"name": "acme/x"}),
        "bad_config": lambda: post(files=_bad_config(lora), data=y),
        "bad_weights": lambda: post(files=_bad_weights(lora), data=y),
        "unknown_field": lambda: post(files=files, data={**y, "colour": "red"}),
        "sha_mismatch": lambda: post(files=files, data={**y, "sha256": "0" * 64}),
        "bad_tag": lambda: post(files=files, data={**y, "tags": "novalue"}),
        "not_multipart": lambda: post(headers={"content-type": "text/plain"}, content=b"x"),
        "bad_json": lambda: post(json=y),
        "json_local_path": lambda: post(json={**y, "source": str(lora)}),
        "wrong_pem_type": lambda: _upload(api, adapter_dirs["ia3"], "acme/x"),
    }[case]()
    assert 400 <= r.status_code < 500, r.text
    body = r.json()
    if field is not None:
        assert body["field"] == field, body
    assert body["detail"]
    assert snapshot(api.reg) == before


def test_upload_size_limit_is_413(reg: object, adapter_dirs: dict[str, Path]) -> None:
    small = make_api(reg, reg.settings.model_copy(update={"max_upload_bytes": 1000}))  # type: ignore[attr-defined]
    before = snapshot(small.reg)
    r = _upload(small, adapter_dirs["lora"], "acme/big")
    assert r.status_code == 413 and r.json()["field"] in ("weights", "body")
    assert snapshot(small.reg) == before


@pytest.mark.postgres
@pytest.mark.s3
def test_register_from_s3_source(
    pg_url: str, s3_service: S3Service, s3_store_url: str, tmp_path: Path, adapter_dirs: dict[str, Path]
) -> None:
    from registry.service import Registry
    from tests.pg_service import truncate_all

    settings = Settings(
        home=tmp_path,
        database_url=pg_url,
        artifact_store=s3_store_url,
        s3_endpoint_url=s3_service.endpoint,
        s3_access_key_id=s3_service.access_key,
        s3_secret_access_key=s3_service.secret_key,
        s3_region=s3_service.region,
        source_roots=f"{s3_store_url}-src",  # where the operator lets REST callers name adapter folders
    )
    reg = Registry(settings)
    reg.store.ensure_ready()
    try:
        client_api = make_api(reg)
        source = f"{s3_store_url}-src/my-lora"
        bucket, prefix = source.removeprefix("s3://").split("/", 1)
        for name in ("adapter_config.json", WEIGHTS):
            s3_service.client().put_object(
                Bucket=bucket, Key=f"{prefix}/{name}", Body=(adapter_dirs["lora"] / name).read_bytes()
            )
        body = {"source": source, "name": "acme/from-s3", "tags": {"team": "a"}, "task": "math"}
        r = client_api.client.post("/v1/adapters", headers=client_api.h("writer"), json=body)
        assert r.status_code == 201, r.text
        assert r.json()["sha256"] == hashlib.sha256((adapter_dirs["lora"] / WEIGHTS).read_bytes()).hexdigest()
        again = client_api.client.post("/v1/adapters", headers=client_api.h("writer"), json=body)
        assert again.status_code == 200
        before = snapshot(reg)
        r = client_api.client.post(
            "/v1/adapters",
            headers=client_api.h("writer"),
            json={"source": f"{s3_store_url}-src/empty", "name": "acme/nothing"},
        )
        # An allowed URI naming nothing readable: like any unknown object, 404 naming the field.
        assert r.status_code == 404 and r.json()["field"] == "source", r.text
        missing_bucket = f"s3://no-such-bucket-{tmp_path.name.lower().replace('_', '-')}/x"
        r = client_api.client.post(
            "/v1/adapters", headers=client_api.h("writer"), json={"source": missing_bucket, "name": "acme/no"}
        )
        # Outside the roots: refused before any bucket is asked (422, the same whether it exists).
        assert r.status_code == 422 and r.json()["field"] == "source", r.text
        assert "allowed source root" in r.json()["detail"]
        assert snapshot(reg) == before
    finally:
        truncate_all(pg_url)


def test_alias_move_is_audited_with_the_key_name(api: Api, adapter_dirs: dict[str, Path]) -> None:
    _upload(api, adapter_dirs["lora"], "acme/a")
    _upload(api, adapter_dirs["lora2"], "acme/a")
    h = api.h("writer")
    first = api.client.put("/v1/adapters/acme/a/aliases/prod", headers=h, json={"version": 1})
    assert first.json()["version"] == 1
    moved = api.client.put("/v1/adapters/acme/a/aliases/prod", headers=h, json={"version": 2})
    assert moved.status_code == 200 and moved.json()["aliases"] == ["prod"]
    got = api.client.get("/v1/adapters/acme/a/versions/prod", headers=api.h("reader")).json()
    assert got["version"] == 2
    shown = api.client.get("/v1/adapters/acme/a", headers=api.h("reader")).json()
    assert shown["aliases"] == {"prod": 2} and [v["version"] for v in shown["versions"]] == [1, 2]

    events = api.client.get("/v1/audit", params={"subject": "acme/a"}, headers=api.h("reader")).json()
    moves = [e for e in events if e["action"] == "alias_move"]
    assert [(e["actor"], e["details"]["from_version"], e["details"]["to_version"]) for e in moves] == [
        ("key:writer-key", 1, 2),
        ("key:writer-key", None, 1),
    ]
    assert {e["actor"] for e in events if e["action"] == "register"} == {"key:writer-key"}
    by_actor = api.client.get("/v1/audit", params={"actor": "key:writer-key"}, headers=api.h("reader")).json()
    assert {e["actor"] for e in by_actor} == {
        "key:writer-key"
    }  # incl. the base model registered on first use
    assert {e["id"] for e in events} <= {e["id"] for e in by_actor}

    for bad, field in (({"version": 9}, None), ({"version": 0}, "version"), ({}, "version")):
        r = api.client.put("/v1/adapters/acme/a/aliases/prod", headers=h, json=bad)
        assert r.status_code in (404, 422) and (field is None or r.json()["field"] == field)
    r = api.client.put("/v1/adapters/acme/a/aliases/latest", headers=h, json={"version": 1})
    assert r.status_code == 422 and r.json()["field"] == "alias"


def test_keys_over_the_api(api: Api) -> None:
    r = api.client.post("/v1/keys", headers=api.h("admin"), json={"name": "ci-bot", "role": "writer"})
    assert r.status_code == 201
    secret = r.json()["key"]
    assert api.client.get("/v1/adapters", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    dup = api.client.post("/v1/keys", headers=api.h("admin"), json={"name": "ci-bot", "role": "reader"})
    assert dup.status_code == 409
    assert api.client.delete("/v1/keys/ci-bot", headers=api.h("admin")).status_code == 204
    assert api.client.get("/v1/adapters", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    assert api.client.delete("/v1/keys/ci-bot", headers=api.h("admin")).status_code == 404
    actions = [
        (e["action"], e["actor"])
        for e in api.client.get("/v1/audit", params={"subject": "key:ci-bot"}, headers=api.h("admin")).json()
    ]
    assert actions == [("key_revoke", "key:admin-key"), ("key_create", "key:admin-key")]


def test_base_models(api: Api) -> None:
    store = api.reg.settings.resolved_artifact_store
    body = {"name": "other-gpt2", "source": f"{store}/models/other-gpt2", "revision": "r1"}
    assert api.client.post("/v1/base-models", headers=api.h("writer"), json=body).status_code == 201
    assert api.client.post("/v1/base-models", headers=api.h("writer"), json=body).status_code == 200
    clash = api.client.post(
        "/v1/base-models", headers=api.h("writer"), json={**body, "source": f"{store}/models/elsewhere"}
    )
    assert clash.status_code == 409
    listed = api.client.get("/v1/base-models", headers=api.h("reader")).json()
    assert ("other-gpt2", "r1") in [(b["name"], b["revision"]) for b in listed]


def test_pagination(api: Api, adapter_dirs: dict[str, Path]) -> None:
    for i in range(5):
        _upload(api, adapter_dirs["lora"], f"acme/p{i}")
    seen, token = [], None
    while True:
        params = {"limit": 2, **({"page_token": token} if token else {})}
        page = api.client.get("/v1/adapters", params=params, headers=api.h("reader")).json()
        seen += [a["name"] for a in page["items"]]
        token = page["next_page_token"]
        if not token:
            break
    assert seen == [f"acme/p{i}" for i in range(5)]
    assert json.loads(json.dumps(seen))  # plain JSON all the way
