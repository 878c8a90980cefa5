"""Lineage graphs, digest lookup and serving references over HTTP (edges inserted directly, as
tests/test_lineage.py does, since compositions are not needed to test the read side)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from registry import service
from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.hashing import sha256_file
from registry.service.catalog.resolve import resolve_version
from tests.factories import make_lora
from tests.test_api_common import Api, api_fixture  # noqa: F401


def _edge(api: Api, parent: str, child: str, weight: float, op: str = "linear") -> None:
    with transaction(api.reg.sessions) as s:
        s.add(
            m.LineageEdge(
                parent_version_id=resolve_version(s, parent, access=api.reg.acting).id,
                child_version_id=resolve_version(s, child, access=api.reg.acting).id,
                operator=op,
                weight=weight,
            )
        )


def test_lineage_up_and_down(api: Api, tmp_path: Path) -> None:
    for i, name in enumerate(["a", "b", "ab", "abc", "c"]):
        service.register_adapter(api.reg, make_lora(tmp_path / name, seed=200 + i), f"lab/{name}")
    _edge(api, "lab/a@1", "lab/ab@1", 0.5)
    _edge(api, "lab/b@1", "lab/ab@1", -0.5)
    _edge(api, "lab/ab@1", "lab/abc@1", 1.0, "delta_svd")
    _edge(api, "lab/c@1", "lab/abc@1", 0.25, "delta_svd")
    h = api.h("reader")

    up = api.client.get("/v1/adapters/lab/abc/versions/latest/lineage", headers=h).json()
    assert up["root"] == "lab/abc@1" and up["direction"] == "up"
    assert {f"{n['name']}@{n['version']}": n["depth"] for n in up["nodes"]} == {
        "lab/abc@1": 0,
        "lab/ab@1": 1,
        "lab/c@1": 1,
        "lab/a@1": 2,
        "lab/b@1": 2,
    }
    edges = {(e["parent"], e["child"]): (e["operator"], e["weight"]) for e in up["edges"]}
    assert edges == {
        ("lab/a@1", "lab/ab@1"): ("linear", 0.5),
        ("lab/b@1", "lab/ab@1"): ("linear", -0.5),
        ("lab/ab@1", "lab/abc@1"): ("delta_svd", 1.0),
        ("lab/c@1", "lab/abc@1"): ("delta_svd", 0.25),
    }

    abc, a = "/v1/adapters/lab/abc/versions/1/lineage", "/v1/adapters/lab/a/versions/1/lineage"
    shallow = api.client.get(abc, params={"depth": 1}, headers=h).json()
    assert {n["name"] for n in shallow["nodes"]} == {"lab/abc", "lab/ab", "lab/c"}
    down = api.client.get(a, params={"direction": "down"}, headers=h).json()
    assert {f"{n['name']}@{n['version']}" for n in down["nodes"]} == {"lab/a@1", "lab/ab@1", "lab/abc@1"}

    for params, field in (
        ({"direction": "sideways"}, "direction"),
        ({"depth": 0}, "depth"),
        ({"depth": 101}, "depth"),
    ):
        r = api.client.get("/v1/adapters/lab/a/versions/1/lineage", params=params, headers=h)
        assert r.status_code == 422 and r.json()["field"] == field

    # Which object is this file, with its ancestry: by weights digest and by another file's digest.
    weights = service.get_version(api.reg, "lab/abc@1")
    [match] = api.client.get(f"/v1/artifacts/{weights.sha256}", headers=h).json()
    assert (match["kind"], match["name"], match["version"]) == ("adapter_version", "lab/abc", 1)
    assert match["file"] == "adapter_model.safetensors" and len(match["ancestry"]["edges"]) == 4
    config_sha = sha256_file(tmp_path / "abc" / "adapter_config.json")
    matches = api.client.get(f"/v1/artifacts/sha256:{config_sha}", headers=h).json()
    assert {(x["name"], x["file"]) for x in matches} >= {("lab/abc", "adapter_config.json")}
    assert api.client.get(f"/v1/artifacts/{'0' * 64}", headers=h).status_code == 404
    bad = api.client.get("/v1/artifacts/xyz", headers=h)
    assert bad.status_code == 422 and bad.json()["field"] == "sha256"


def test_version_refs_by_number_alias_and_digest(api: Api, adapter_dirs: dict[str, Path]) -> None:
    v1, _ = service.register_adapter(api.reg, adapter_dirs["lora"], "acme/refs")
    service.register_adapter(api.reg, adapter_dirs["lora2"], "acme/refs")
    service.set_alias(api.reg, "acme/refs@1", "stable")
    h = api.h("reader")
    base = "/v1/adapters/acme/refs/versions"
    assert api.client.get(f"{base}/2", headers=h).json()["version"] == 2
    assert api.client.get(f"{base}/latest", headers=h).json()["version"] == 2
    assert api.client.get(f"{base}/stable", headers=h).json()["version"] == 1
    assert api.client.get(f"{base}/sha256:{v1.sha256[:12]}", headers=h).json()["version"] == 1
    assert api.client.get(f"{base}/nope", headers=h).status_code == 404
    assert api.client.get(f"{base}/7", headers=h).status_code == 404


def test_serving_refs_are_pinned_by_digest_and_usable_from_another_host(
    api: Api, adapter_dirs: dict[str, Path]
) -> None:
    v, _ = service.register_adapter(api.reg, adapter_dirs["lora"], "acme/srv")
    service.set_alias(api.reg, "acme/srv@1", "prod")
    refs = api.client.get(
        "/v1/adapters/acme/srv/versions/prod/serving", params={"dir": "/data/loras"}, headers=api.h("reader")
    ).json()
    assert refs["supported"] is True
    name = f"acme/srv@{v.sha256[:8]}"
    assert refs["vllm"]["lora_name"] == name and refs["pull"]["folder"] == name
    assert refs["vllm"]["lora_path"] == refs["pull"]["path"] == f"/data/loras/{name}"
    assert refs["pull"]["command"] == "pemreg adapters pull acme/srv@1 /data/loras"
    assert refs["vllm"]["load_request"] == {"lora_name": name, "lora_path": f"/data/loras/{name}"}
    assert refs["vllm"]["resolver_env"]["VLLM_LORA_RESOLVER_CACHE_DIR"] == "/data/loras"
    assert refs["vllm"]["lora_int_id"] > 0
    assert refs["base_model_source"]
    assert {f["file"] for f in refs["files"]} == set(v.files)
    if v.artifact_uri.startswith("s3://"):
        assert refs["lorax"]["adapter_source"] == "s3" and refs["lorax"]["adapter_id"] == v.artifact_uri
        assert refs["lorax"]["s3_endpoint_url"] == api.reg.settings.s3_endpoint_url
        assert refs["expires_in"] == 3600 and all("X-Amz-Signature" in f["url"] for f in refs["files"])
    else:  # nothing points at the server's own disk
        assert api.reg.settings.resolved_artifact_store.removeprefix("file://") not in json.dumps(refs)
        assert refs["lorax"] == {
            "adapter_id": f"/data/loras/{name}",
            "adapter_source": "local",
            "s3_endpoint_url": None,
        }
        assert refs["expires_in"] is None
        for f in refs["files"]:  # the authenticated download route, checked against the digest
            assert "/v1/adapters/acme/srv/versions/1/download?file=" in f["url"]
            got = api.client.get(f["url"], headers=api.h("reader"))
            assert hashlib.sha256(got.content).hexdigest() == f["sha256"]
    bad = api.client.get(
        "/v1/adapters/acme/srv/versions/1/serving", params={"dir": "rel"}, headers=api.h("reader")
    )
    assert bad.status_code == 422

    service.register_adapter(api.reg, adapter_dirs["ia3"], "acme/ia3")
    ia3 = api.client.get("/v1/adapters/acme/ia3/versions/1/serving", headers=api.h("reader")).json()
    assert ia3["supported"] is False and ia3["vllm"] is None and "LoRA" in ia3["reason"]
