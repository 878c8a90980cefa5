"""registry.client against a live `pemreg serve` on PostgreSQL + SeaweedFS: every operation, and the
server's errors as typed exceptions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.client import (
    Client,
    Conflict,
    Forbidden,
    IntegrityError,
    InvalidInput,
    NotFound,
    ServerUnavailable,
    Unauthorized,
)
from registry.hashing import sha256_file
from registry.service.catalog.resolve import resolve_version
from registry.store import adapter_prefix
from tests.live_server import Server, free_port
from tests.s3_service import S3Service

WEIGHTS = "adapter_model.safetensors"


def test_import_is_light() -> None:
    code = (
        "import sys, registry.client; "
        "print([m for m in ('torch', 'prefect', 'peft', 'sqlalchemy', 'transformers') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_catalog_operations(live_server: Server, adapter_dirs: dict[str, Path], tmp_path: Path) -> None:
    with Client(live_server.url, live_server.keys["admin"]) as c:
        sent: dict[str, int] = {}

        def progress(name: str, total: int):  # noqa: ANN202
            sent[name] = 0
            return lambda n: sent.__setitem__(name, sent[name] + n)

        lora = adapter_dirs["lora"]
        v1 = c.register(
            lora, "cl/math", task="math", tags={"team": "a"}, description="sums", progress=progress
        )
        assert (v1.name, v1.version, v1.created) == ("cl/math", 1, True)
        assert v1.sha256 == sha256_file(lora / WEIGHTS)
        assert sent[WEIGHTS] == (lora / WEIGHTS).stat().st_size  # streamed through the callback
        assert c.register(lora, "cl/math").created is False  # same bytes: idempotent
        v2 = c.register(adapter_dirs["lora2"], "cl/math")
        c.register(adapter_dirs["ia3"], "cl/style", task="style")

        # Pagination: one adapter a page, the iterator walks the tokens.
        first = c.list_adapters(limit=1, query="cl/")
        assert [a.name for a in first.items] == ["cl/math"] and first.next_page_token
        assert [a.name for a in c.iter_adapters(page_size=1, query="cl/")] == ["cl/math", "cl/style"]
        assert [a.name for a in c.iter_adapters(tags={"team": "a"})] == ["cl/math"]
        assert [a.name for a in c.iter_adapters(task="style")] == ["cl/style"]

        shown = c.show("cl/math")
        assert [v.version for v in shown.versions or []] == [1, 2] and shown.latest_version == 2
        assert c.get_version(f"cl/math@sha256:{v1.sha256[:10]}").version == 1

        assert c.set_alias("cl/math@1", "prod").aliases == ["prod"]
        assert c.get_version("cl/math@prod").version == 1

        out = tmp_path / "dl"
        version, files = c.download("cl/math@prod", out, progress=progress)
        assert version.version == 1 and {f.name for f in files} == set(v1.files)
        assert (out / WEIGHTS).read_bytes() == (lora / WEIGHTS).read_bytes()
        with pytest.raises(InvalidInput) as err:
            c.download("cl/math@2", out)  # not empty: refused without force
        assert err.value.field == "dest"
        c.download("cl/math@2", out, force=True)
        assert sha256_file(out / WEIGHTS) == v2.sha256

        assert c.delete_alias("cl/math", "prod").version == 1
        with pytest.raises(NotFound):
            c.get_version("cl/math@prod")

        patched = c.update_adapter("cl/math", tags={"team": None, "stage": "dev"}, description="new")
        assert patched.tags == {"stage": "dev"} and patched.description == "new"

        graph = c.lineage("cl/math@2")
        assert graph.root == "cl/math@2" and graph.edges == []
        matches = c.artifact(v1.sha256)
        assert [(x.name, x.version, x.file) for x in matches] == [("cl/math", 1, WEIGHTS)]

        base, created = c.add_base_model("cl-base", source="org/cl-base")
        assert created and base.name == "cl-base"
        assert c.add_base_model("cl-base", source="org/cl-base")[1] is False
        assert "cl-base" in {b.name for b in c.list_base_models()}

        events = c.audit(subject="cl/math")
        assert [e.actor for e in events] == ["key:admin-key"] * len(events)
        assert {"register", "alias_move", "alias_delete", "adapter_update"} <= {e.action for e in events}

        created_key = c.create_key("cl-ci", "reader")
        assert created_key.key.startswith("pemreg_")
        assert ("cl-ci", "reader") in {(k.name, k.role) for k in c.list_keys()}
        c.revoke_key("cl-ci")
        assert next(k for k in c.list_keys() if k.name == "cl-ci").revoked_at is not None
        with pytest.raises(Unauthorized):
            Client(live_server.url, created_key.key).show("cl/math")


def test_lifecycle_through_the_api(live_server: Server, adapter_dirs: dict[str, Path]) -> None:
    with Client(live_server.url, live_server.keys["admin"]) as c:
        c.register(adapter_dirs["lora"], "lc/parent")
        c.register(adapter_dirs["lora2"], "lc/parent")
        c.register(adapter_dirs["lora_gpt2"], "lc/child")
        with transaction(live_server.reg.sessions) as session:  # the edge a composition would record
            p, ch = (
                resolve_version(session, "lc/parent@1", access=live_server.reg.acting),
                resolve_version(session, "lc/child@1", access=live_server.reg.acting),
            )
            session.add(
                m.LineageEdge(parent_version_id=p.id, child_version_id=ch.id, operator="linear", weight=1)
            )

        assert c.deprecate("lc/parent@2").status == "deprecated"
        assert c.get_version("lc/parent").version == 2  # deprecated: still latest
        assert c.archive("lc/parent@2").status == "archived"
        assert c.get_version("lc/parent").version == 1  # archived: skipped by latest
        assert [v.version for v in c.show("lc/parent").versions or []] == [1]
        assert [v.version for v in c.show("lc/parent", include_archived=True).versions or []] == [1, 2]
        assert c.restore("lc/parent@2").status == "active"

        with pytest.raises(Conflict, match="lc/child@1"):
            c.delete_version("lc/parent@1")
        assert c.delete_version("lc/child@1").status == "deleted"
        assert c.delete_version("lc/parent@1").status == "deleted"
        with pytest.raises(NotFound, match="was deleted"):
            c.get_version("lc/parent@1")
        up = c.lineage("lc/child@1")
        assert {(n.name, n.status) for n in up.nodes} == {("lc/parent", "deleted"), ("lc/child", "deleted")}
        actions = [e.action for e in reversed(c.audit(subject="lc/parent"))]
        assert actions == [
            "register",
            "register",
            "version_deprecate",
            "version_archive",
            "version_restore",
            "version_delete",
        ]


def test_errors_are_typed(
    live_server: Server, adapter_dirs: dict[str, Path], tmp_path: Path, s3_service: S3Service
) -> None:
    url = live_server.url
    with pytest.raises(Unauthorized):
        Client(url).list_adapters()
    with pytest.raises(Unauthorized):
        Client(url, "pemreg_00000000_nope").list_adapters()
    with pytest.raises(Forbidden, match="reader"):
        Client(url, live_server.keys["reader"]).register(adapter_dirs["lora"], "er/x")
    writer = Client(url, live_server.keys["writer"])
    v = writer.register(adapter_dirs["lora"], "er/x")
    with pytest.raises(Forbidden):
        writer.delete_version("er/x@1")  # admin only
    with pytest.raises(Forbidden):
        writer.list_keys()
    with pytest.raises(NotFound, match="er/nope"):
        writer.show("er/nope")
    with pytest.raises(InvalidInput) as bad_limit:
        writer.list_adapters(limit=0)
    assert bad_limit.value.field == "limit" and bad_limit.value.status == 422
    with pytest.raises(InvalidInput) as bad_name:
        writer.register(adapter_dirs["lora"], "Not A Name")
    assert bad_name.value.field == "name"
    with pytest.raises(Conflict):
        writer.register(adapter_dirs["ia3"], "er/x")  # another PEM type under the same name
    with pytest.raises(ServerUnavailable):
        Client(f"http://127.0.0.1:{free_port()}", "k", timeout=3).list_adapters()

    # Bytes changed behind the catalog's back: the download refuses them and leaves no file.
    bucket, _, prefix = live_server.reg.settings.resolved_artifact_store.removeprefix("s3://").partition("/")
    key = f"{prefix}/{adapter_prefix('er', 'x', v.sha256)}/{WEIGHTS}"
    s3_service.client().put_object(Bucket=bucket, Key=key, Body=b"tampered")
    with pytest.raises(IntegrityError, match=WEIGHTS):
        writer.download("er/x@1", tmp_path / "bad")
    assert not (tmp_path / "bad" / WEIGHTS).exists()


def test_compositions_validate_and_lookups(live_server: Server, adapter_dirs: dict[str, Path]) -> None:
    with Client(live_server.url, live_server.keys["writer"]) as c:
        c.register(adapter_dirs["lora"], "cp/a")
        c.register(adapter_dirs["lora2"], "cp/b")
        spec = {"name": "cp/ab", "method": "delta_cat", "expression": "0.5 * cp/a + 0.5 * cp/b"}
        report = c.validate(spec)
        assert [(i["name"], i["weight"]) for i in report["inputs"]] == [("cp/a", 0.5), ("cp/b", 0.5)]
        assert len(report["interference"]["pairs"]) == 1
        yaml_report = c.validate("name: cp/ab\nmethod: delta_cat\nexpression: '0.5 * cp/a + 0.5 * cp/b'\n")
        assert yaml_report["cache_key"] == report["cache_key"]
        with pytest.raises(InvalidInput) as err:
            c.validate(json.loads('{"name": "cp/ab", "method": "nope", "expression": "cp/a"}'))
        assert err.value.field
        with pytest.raises(NotFound):
            c.get_composition("00000000-0000-0000-0000-000000000000")
        assert c.list_compositions(status="succeeded") == []
