"""What a REST caller may name, and what 202 / 201 promise, on PostgreSQL + SeaweedFS.

The campaign found: adapter and base-model sources in another tenant's prefix or on the server's disk
(`/etc`, `/proc/self/environ`, `file:///etc/passwd`) accepted with 201, different 404 texts telling
whether a bucket exists, a hub id making the server connect to the hub; a spec with a `schedule` and a
dataset outside the roots accepted with 202 (its scheduled runs then read the file); a recompose cycle
accepted; a REST upload whose hidden size does not fit its base accepted (the check ran in the CLI
only). Each is refused here before anything is stored or read, with one text per kind of refusal."""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import load_file, save_file

from api.app import create_app
from registry import service
from registry.service import Registry
from registry.service.admin.keys import create_key
from registry.service.compositions import runs
from registry.spec import load_spec
from tests.catalog_helpers import snapshot
from tests.factories import make_lora, save_tiny_base
from tests.pg_service import truncate_all
from tests.s3_service import S3Service

pytestmark = [pytest.mark.postgres, pytest.mark.s3]
WEIGHTS, CONFIG = "adapter_model.safetensors", "adapter_config.json"


class _Hub(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        _Hub.hits.append(self.path)
        self.send_response(404)
        self.end_headers()

    do_HEAD = do_GET

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture(scope="module")
def hub() -> Iterator[str]:
    """A loopback stand-in for the model hub: it only counts connections (there must be none)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def world(
    pg_url: str, s3_service: S3Service, tmp_path_factory: pytest.TempPathFactory, hub: str
) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("sources")
    prefix = f"sources-{os.getpid()}"
    store_url = f"s3://{s3_service.bucket}/{prefix}/store"
    roots = tmp / "roots"
    (roots / "data").mkdir(parents=True)
    (roots / "data" / "ok.jsonl").write_text('{"text": "a b c"}\n')
    settings = s3_service.settings(
        home=tmp / "home", database_url=pg_url, store_url=store_url, principal="ops"
    )
    settings = settings.model_copy(
        update={"source_roots": f"{roots},s3://{s3_service.bucket}/{prefix}/shared"}
    )
    reg = Registry(settings)
    reg.store.ensure_ready()
    service.add_base_model(reg, "tiny-llama", source=str(save_tiny_base(tmp / "base")))  # the operator's
    service.register_adapter(reg, make_lora(tmp / "a", seed=1), "t/a")
    service.register_adapter(reg, make_lora(tmp / "b", seed=2), "t/b")
    # Another tenant's private prefix in the same object store, holding a real adapter and a dataset.
    s3 = s3_service.client()
    for name in (CONFIG, WEIGHTS):
        s3.put_object(
            Bucket=s3_service.bucket,
            Key=f"{prefix}/other-tenant/private/adapter/{name}",
            Body=(tmp / "a" / name).read_bytes(),
        )
    s3.put_object(
        Bucket=s3_service.bucket,
        Key=f"{prefix}/other-tenant/private/secret.jsonl",
        Body=b'{"text": "secret"}\n',
    )
    secret = tmp / "outside" / "secret.jsonl"
    secret.parent.mkdir()
    secret.write_text('{"text": "the server\'s own file"}\n')
    writer = create_key(reg, "tenant-a", "writer")
    os.environ["HF_ENDPOINT"] = hub  # were anything to contact the hub, it would be this server
    with TestClient(create_app(settings)) as client:
        yield {
            "reg": reg,
            "client": client,
            "h": {"Authorization": f"Bearer {writer}"},
            "tmp": tmp,
            "other": f"s3://{s3_service.bucket}/{prefix}/other-tenant/private",
            "secret": secret,
            "roots": roots,
            "bucket": s3_service.bucket,
            "prefix": prefix,
            "s3": s3,
        }
    os.environ.pop("HF_ENDPOINT", None)
    truncate_all(pg_url)


def _refused(r: Any, field: str) -> str:
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["field"] == field, body
    return str(body["detail"])


def test_adapter_sources_outside_the_roots_get_one_refusal(world: dict[str, Any]) -> None:
    c, h, reg = world["client"], world["h"], world["reg"]
    before = snapshot(reg)
    probes = [
        f"{world['other']}/adapter",  # exists, readable with the server's credentials
        f"s3://no-such-bucket-{world['prefix']}/x",  # does not exist
        "/etc",
        "file:///etc/passwd",
        "/proc/self/environ",
        str(world["tmp"] / "a"),  # a real adapter folder on the server, outside the roots
    ]
    texts = set()
    for source in probes:
        r = c.post("/v1/adapters", headers=h, json={"source": source, "name": "t/stolen"})
        texts.add(_refused(r, "source").replace(repr(source[:200]), "<source>"))
    assert len(texts) == 1, texts
    assert snapshot(reg) == before
    print(f"adapter source probes: {len(probes)}, 422: {len(probes)}, distinct texts: 1, stored: 0")
    # inside a root: allowed (and a root folder with nothing in it is 404, like any unknown object)
    s3 = world["s3"]
    for name in (CONFIG, WEIGHTS):
        s3.put_object(
            Bucket=world["bucket"],
            Key=f"{world['prefix']}/shared/lora/{name}",
            Body=(world["tmp"] / "b" / name).read_bytes(),
        )
    ok = c.post(
        "/v1/adapters",
        headers=h,
        json={"source": f"s3://{world['bucket']}/{world['prefix']}/shared/lora", "name": "t/shared"},
    )
    assert ok.status_code == 201, ok.text
    empty = c.post("/v1/adapters", headers=h, json={"source": str(world["roots"] / "nothing"), "name": "t/x"})
    assert empty.status_code == 404 and empty.json()["field"] == "source"


def test_base_model_sources_outside_the_roots_and_hub_ids_are_refused(world: dict[str, Any]) -> None:
    c, h, reg = world["client"], world["h"], world["reg"]
    _Hub.hits.clear()
    before = snapshot(reg)
    texts = set()
    for i, source in enumerate(
        [
            "file:///etc/passwd",
            "/proc/self/environ",
            "/etc",
            world["other"],
            "s3://no-such-bucket/x",
            "../etc",
        ]
    ):
        r = c.post("/v1/base-models", headers=h, json={"name": f"b{i}", "source": source})
        texts.add(_refused(r, "source").replace(repr(source[:200]), "<source>"))
    assert len(texts) == 1, texts
    hub_id = c.post("/v1/base-models", headers=h, json={"name": "gpt2", "source": "openai-community/gpt2"})
    assert "PEMREG_ALLOW_HUB_SOURCES" in _refused(hub_id, "source")
    assert snapshot(reg) == before
    assert _Hub.hits == []
    print(f"base-model source probes: {i + 2}, 422: {i + 2}, hub connections: {len(_Hub.hits)}, stored: 0")
    inside = c.post("/v1/base-models", headers=h, json={"name": "mine", "source": str(world["roots"] / "m")})
    assert inside.status_code == 201, inside.text


def test_datasets_outside_the_roots_are_refused_at_submission_and_validate(world: dict[str, Any]) -> None:
    """The laundering route: a spec with `schedule` and a dataset the caller may not name gets 422 at
    once (the campaign saw 202, then scheduled runs that read the file as the worker's user)."""
    c, h, reg = world["client"], world["h"], world["reg"]
    before = snapshot(reg)
    texts = set()
    for dataset in (f"{world['other']}/secret.jsonl", world["secret"].as_uri(), "s3://nope/none.jsonl"):
        spec = {
            "name": "t/nightly",
            "expression": "0.5 * t/a + 0.5 * t/b",
            "schedule": "0 3 * * *",
            "evaluate": [{"name": "ppl", "metric": "perplexity", "dataset": dataset}],
        }
        for route in ("/v1/compositions", "/v1/compositions:validate"):
            texts.add(
                _refused(c.post(route, headers=h, json=spec), "evaluate[0].dataset").replace(dataset, "<d>")
            )
    calibration = {
        "name": "t/core",
        "expression": "t/a + t/b",
        "method": "core_merge",
        "density": 0.5,
        "core_criterion": "importance",
        "calibration": world["secret"].as_uri(),
    }
    assert "allowed source root" in _refused(
        c.post("/v1/compositions", headers=h, json=calibration), "calibration"
    )
    assert len(texts) == 1, texts
    assert snapshot(reg) == before


def test_a_recompose_cycle_is_refused_at_submission(world: dict[str, Any]) -> None:
    c, h, reg = world["client"], world["h"], world["reg"]
    # `t/a` follows `t/b@latest` (stored earlier)
    follows_b = load_spec("name: t/a\nexpression: 't/b'\nrecompose: on_parent_update\n")
    runs.create(reg, follows_b, [], "api")
    before = snapshot(reg)
    closing = {"name": "t/b", "expression": "t/a", "recompose": "on_parent_update"}
    detail = _refused(c.post("/v1/compositions", headers=h, json=closing), "recompose")
    assert "t/b -> t/a -> t/b" in detail
    itself = {"name": "t/a", "expression": "0.5 * t/a + 0.5 * t/b", "recompose": "on_parent_update"}
    assert "cycle" in _refused(c.post("/v1/compositions:validate", headers=h, json=itself), "recompose")
    assert snapshot(reg) == before


def test_a_rest_upload_that_does_not_fit_its_base_is_refused(world: dict[str, Any]) -> None:
    """hidden size 64 against the registered 32-wide base: 422 naming the module (the CLI did this;
    REST stored it and the first composition failed)."""
    c, h, reg, tmp = world["client"], world["h"], world["reg"], world["tmp"]
    wide = tmp / "wide"
    make_lora(wide, seed=3)
    tensors = load_file(wide / WEIGHTS)
    for key, t in list(tensors.items()):
        if "lora_A" in key:
            tensors[key] = torch.randn(t.shape[0], 64)
        elif "lora_B" in key:
            tensors[key] = torch.randn(64, t.shape[1])
    save_file(tensors, wide / WEIGHTS)
    before = snapshot(reg)
    files = {
        "config": (CONFIG, (wide / CONFIG).read_bytes()),
        "weights": (WEIGHTS, (wide / WEIGHTS).read_bytes()),
    }
    r = c.post("/v1/adapters", headers=h, data={"name": "t/wide", "base_model": "tiny-llama"}, files=files)
    assert r.status_code == 422, r.text
    assert "do not fit base model tiny-llama" in r.json()["detail"] and r.json()["field"] == "weights"
    assert snapshot(reg) == before
