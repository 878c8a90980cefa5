"""What a new user trips on in the first hour (issue 19), each a reproduction: base identity from
evidence (never a path string) with one verdict in every mode, the repair of invented bases, explicit
and recoverable deletes, README.md kept over REST, the training record, audit by digest prefix, tables
at 80 columns, `init` after the demo, the spec line of a missing `density`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from transformers import LlamaConfig

from registry import service
from registry.base_evidence import evidence_for
from registry.catalog.migrate import upgrade
from registry.errors import Conflict, InvalidInput, NotFound
from registry.hashing import sha256_file
from registry.service import Registry
from registry.service.admin import gc
from registry.service.catalog import lifecycle
from registry.service.registration.base_merge import merge_base_models
from registry.service.registration.base_reads import show_base_model
from registry.settings import Settings
from registry.spec import load_spec
from registry.training import parse_training
from tests.catalog_helpers import snapshot
from tests.cli_inproc import pemreg as _cli
from tests.factories import make_lora, save_tiny_base
from tests.live_server import clean_env
from tests.test_api_common import Api, make_api

WEIGHTS = "adapter_model.safetensors"


@pytest.fixture
def reg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    monkeypatch.chdir(tmp_path)  # relative base paths resolve here, as in a user's shell
    settings = Settings(
        home=tmp_path / "home",
        database_url=f"sqlite:///{tmp_path / 'r.db'}",
        artifact_store=(tmp_path / "store").as_uri(),
        principal="alice",
    )
    upgrade(settings.resolved_database_url)
    registry = Registry(settings)
    registry.store.ensure_ready()
    return registry


@pytest.fixture
def api(reg: Registry) -> Iterator[Api]:
    made = make_api(reg)
    with made.client:
        yield made


def _lora(folder: Path, base: str, seed: int = 1, readme: str | None = None) -> Path:
    make_lora(folder, seed=seed)
    config = json.loads((folder / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = base
    (folder / "adapter_config.json").write_text(json.dumps(config))
    if readme is not None:
        (folder / "README.md").write_text(readme)
    return folder


def _upload(api: Api, folder: Path, name: str, role: str = "writer", **fields: Any) -> Any:
    files = {
        "config": ("adapter_config.json", (folder / "adapter_config.json").read_bytes()),
        "weights": (WEIGHTS, (folder / WEIGHTS).read_bytes()),
    }
    if (folder / "README.md").exists():
        files["readme"] = ("README.md", (folder / "README.md").read_bytes())
    return api.client.post("/v1/adapters", headers=api.h(role), files=files, data={"name": name, **fields})


def _evidence_fields(label: str) -> dict[str, str]:
    """What registry.client sends for a config whose base path names a folder here."""
    found = evidence_for(label)
    assert found is not None
    return {
        k: v
        for k, v in (
            ("base_config_sha256", found.config_sha256),
            ("base_weights_sha256", found.weights_sha256),
            ("base_architecture", found.architecture),
        )
        if v
    }


def _bases(reg: Registry) -> list[str]:
    return sorted(f"{b.name}@{b.revision}" for b in service.list_base_models(reg))


# -- 1. base identity --------------------------------------------------------------------------------


def test_relative_base_path_is_matched_by_evidence_alike_locally_and_over_rest(
    reg: Registry, api: Api, tmp_path: Path
) -> None:
    """The issue's case: `base_model_name_or_path: my-base` (a relative path without `./`)."""
    save_tiny_base(tmp_path / "my-base")
    base, _ = service.add_base_model(reg, "my-llama", source="./my-base")
    assert base.config_sha256 and base.sha256 == sha256_file(tmp_path / "my-base" / "model.safetensors")
    lora = _lora(tmp_path / "lora", "my-base")
    notes: list[str] = []
    local, _ = service.register_adapter(reg, lora, "acme/math", notify=notes.append)
    assert local.base_model == "my-llama" and notes == []

    # REST with the client's evidence: the same verdict.
    other = _lora(tmp_path / "lora2", "my-base", seed=2)
    done = _upload(api, other, "acme/medicine", **_evidence_fields("my-base"))
    assert done.status_code == 201, done.text
    assert done.json()["base_model"] == "my-llama" and done.json()["notes"] == []

    # REST without evidence: `my-base` is not taken as an identity, nothing is invented or stored.
    before = snapshot(reg)
    third = _lora(tmp_path / "lora3", "my-base", seed=3)
    refused = _upload(api, third, "acme/new")
    assert refused.status_code == 404 and refused.json()["field"] == "base_model", refused.text
    assert "not registered" in refused.json()["detail"]
    assert snapshot(reg) == before and _bases(reg) == ["my-llama@main", "tiny-gpt2@main", "tiny-llama@main"]

    # A folder of another model (other config, other weights) matches nothing: refused naming the
    # registered base of the same architecture, locally and over REST alike.
    LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        vocab_size=128,
        architectures=["LlamaForCausalLM"],
    ).save_pretrained(tmp_path / "wide-base")
    wide = _lora(tmp_path / "lora4", "wide-base", seed=4)
    with pytest.raises(
        InvalidInput, match=r"'wide-base' is a local path that matches no registered base.*my-llama@main"
    ):
        service.register_adapter(reg, wide, "acme/wide")
    over_rest = _upload(api, wide, "acme/wide", **_evidence_fields("wide-base"))
    assert over_rest.status_code == 422 and "my-llama@main" in over_rest.json()["detail"]
    assert snapshot(reg) == before


def test_no_base_model_is_created_implicitly_over_rest(reg: Registry, api: Api, tmp_path: Path) -> None:
    lora = _lora(tmp_path / "lora", "org/new-base")
    before = snapshot(reg)
    refused = _upload(api, lora, "acme/x")
    assert refused.status_code == 404 and "create_base" in refused.json()["detail"]
    assert snapshot(reg) == before
    made = _upload(api, lora, "acme/x", create_base="true")  # the caller asks: created, and said
    assert made.status_code == 201 and "org/new-base@main was not registered" in made.json()["notes"][0]
    assert show_base_model(reg, "org/new-base").auto_registered
    assert api.client.get("/v1/base-models/org/new-base", headers=api.h("reader")).json()["adapters"] == [
        "acme/x"
    ]


def test_merge_repairs_an_invented_base(reg: Registry, api: Api, tmp_path: Path) -> None:
    # A catalog as the bug left it: `my-base` invented from a path string, an adapter on it.
    invented = _lora(tmp_path / "lora", "my-base")
    service.register_adapter(reg, invented, "acme/old", create_base=True)  # no folder here: a "hub id"
    detail = show_base_model(reg, "my-base")
    assert detail.auto_registered and detail.adapters == ["acme/old"] and detail.config_sha256 is None
    save_tiny_base(tmp_path / "real")
    service.add_base_model(reg, "my-llama", source=str(tmp_path / "real"))

    assert (
        api.client.post(
            "/v1/base-models:merge", headers=api.h("writer"), json={"base": "my-base", "into": "my-llama"}
        ).status_code
        == 403
    )
    merged = api.client.post(
        "/v1/base-models:merge", headers=api.h("admin"), json={"base": "my-base", "into": "my-llama"}
    )
    assert merged.status_code == 200, merged.text
    assert merged.json() == {
        "merged": "my-base@main",
        "into": "my-llama@main",
        "adapters": ["acme/old"],
        "merged_models": 0,
    }
    assert service.get_version(reg, "acme/old@1").base_model == "my-llama"
    assert "my-base@main" not in _bases(reg)
    assert [e.action for e in service.list_events(reg, subject="base:my-llama@main", actor=None, limit=5)][
        0
    ] == "base_merge"
    with pytest.raises(NotFound):
        show_base_model(reg, "my-base")

    # Two bases recorded as different models are never merged.
    LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        vocab_size=128,
    ).save_pretrained(tmp_path / "wide")
    service.add_base_model(reg, "wide-llama", source=str(tmp_path / "wide"))
    with pytest.raises(Conflict, match="config_sha256"):
        merge_base_models(reg, "my-llama", "wide-llama")


# -- 3. delete is explicit and recoverable ------------------------------------------------------------


def test_delete_needs_a_version_and_undelete_brings_it_back_until_gc(
    reg: Registry, api: Api, tmp_path: Path
) -> None:
    lora = _lora(tmp_path / "lora", "tiny-llama")
    service.register_adapter(reg, lora, "acme/bin")
    service.register_adapter(reg, _lora(tmp_path / "lora2", "tiny-llama", seed=2), "acme/bin")
    service.set_alias(reg, "acme/bin@1", "prod")
    with pytest.raises(InvalidInput, match="names no version"):
        lifecycle.delete_version(reg, "acme/bin")
    assert (
        api.client.delete("/v1/adapters/acme/bin/versions/latest", headers=api.h("admin")).status_code == 422
    )
    no_flag = api.client.delete("/v1/adapters/acme/bin", headers=api.h("admin"))
    assert no_flag.status_code == 422 and no_flag.json()["field"] == "all_versions"

    deleted = lifecycle.delete_version(reg, "acme/bin@1")
    assert deleted.status == "deleted"
    with pytest.raises(Conflict, match=r"adapters undelete acme/bin@1.*--allow-deleted"):
        service.register_adapter(reg, lora, "acme/bin")
    back = api.client.post("/v1/adapters/acme/bin/versions/1:undelete", headers=api.h("admin"))
    assert back.status_code == 200 and back.json()["status"] == "active" and back.json()["aliases"] == []
    assert [e.action for e in service.list_events(reg, subject="acme/bin@1", actor=None, limit=2)][
        0
    ] == "version_undelete"

    # After gc removed its files, undelete says so; --allow-deleted brings the bytes (and the version) back.
    lifecycle.delete_version(reg, "acme/bin@1")
    removed = gc.collect(reg, dry_run=False, grace_seconds=0)
    assert len(removed) == 1
    with pytest.raises(Conflict, match="removed by gc"):
        lifecycle.undelete_version(reg, "acme/bin@1")
    notes: list[str] = []
    again, created = service.register_adapter(reg, lora, "acme/bin", allow_deleted=True, notify=notes.append)
    assert created and again.version == 1 and again.status == "active"
    assert "had these bytes and was deleted; registered them again" in notes[0]
    service.download_version(reg, "acme/bin@1", tmp_path / "out")
    assert (tmp_path / "out" / WEIGHTS).read_bytes() == (lora / WEIGHTS).read_bytes()

    everything = api.client.delete(
        "/v1/adapters/acme/bin", params={"all_versions": "true"}, headers=api.h("admin")
    )
    assert everything.status_code == 200 and [v["status"] for v in everything.json()] == [
        "deleted",
        "deleted",
    ]


# -- 4. one upload surface ------------------------------------------------------------------------


def test_rest_upload_keeps_readme_byte_identical_and_writes_model_card(
    reg: Registry, api: Api, tmp_path: Path
) -> None:
    card = "---\nlicense: mit\n---\n# My adapter\n\nTrained with love. ünïcode\n"
    lora = _lora(tmp_path / "lora", "tiny-llama", readme=card)
    done = _upload(api, lora, "acme/carded")
    assert done.status_code == 201, done.text
    local, _ = service.register_adapter(
        reg, _lora(tmp_path / "l2", "tiny-llama", seed=2, readme=card), "acme/local"
    )
    assert (
        sorted(done.json()["files"])
        == sorted(local.files)
        == sorted(["adapter_config.json", WEIGHTS, "README.md", "MODEL_CARD.md", "provenance.json"])
    )
    service.download_version(reg, "acme/carded@1", tmp_path / "out")
    assert (tmp_path / "out" / "README.md").read_bytes() == card.encode()
    assert "acme/carded" in (tmp_path / "out" / "MODEL_CARD.md").read_text()


# -- 8. training record --------------------------------------------------------------------------


def test_training_record_is_stored_shown_and_searchable(reg: Registry, api: Api, tmp_path: Path) -> None:
    training = parse_training(
        ["accuracy=0.91", "loss=0.3"], ["lr=1e-4", "epochs=3"], ["s3://data/math.jsonl"]
    )
    v, _ = service.register_adapter(reg, _lora(tmp_path / "a", "tiny-llama"), "acme/good", training=training)
    assert v.training.metrics == {"accuracy": 0.91, "loss": 0.3} and v.training.params["lr"] == "1e-4"
    up = _upload(
        api,
        _lora(tmp_path / "b", "tiny-llama", seed=2),
        "acme/poor",
        metrics=["accuracy=0.5"],
        params=["lr=3e-4"],
        datasets=["s3://data/other.jsonl"],
    )
    assert up.status_code == 201 and up.json()["training"]["metrics"] == {"accuracy": 0.5}

    def names(**filters: Any) -> list[str]:
        return [a.name for a in service.list_adapters(reg, **filters).items]

    assert names(metrics=["accuracy>=0.9"]) == ["acme/good"]
    assert names(metrics=["accuracy<0.9"]) == ["acme/poor"]
    assert names(params={"lr": "3e-4"}) == ["acme/poor"]
    assert names(datasets=["s3://data/math.jsonl"], metrics=["loss<1"]) == ["acme/good"]
    listed = api.client.get(
        "/v1/adapters", params={"metric": "accuracy>0.6", "param": "epochs:3"}, headers=api.h("reader")
    )
    assert [a["name"] for a in listed.json()["items"]] == ["acme/good"]
    shown = api.client.get("/v1/adapters/acme/good/versions/1", headers=api.h("reader")).json()
    assert shown["training"]["datasets"] == ["s3://data/math.jsonl"]
    bad = _upload(api, _lora(tmp_path / "c", "tiny-llama", seed=3), "acme/bad", metrics=["accuracy=high"])
    assert bad.status_code == 422 and bad.json()["field"] == "metric"
    assert (
        api.client.get("/v1/adapters", params={"metric": "accuracy>>1"}, headers=api.h("reader")).status_code
        == 422
    )


# -- 7, 8. CLI: audit by prefix, tables at 80 columns, show after archive, init after the demo -------


def test_cli_first_hour(reg: Registry, tmp_path: Path) -> None:
    from registry.service.admin.setup import initialize
    from registry.service.compositions import runs
    from registry.service.compositions.inputs import resolve_inputs
    from registry.service.compositions.status import RunStatus

    env = clean_env(
        PEMREG_HOME=str(reg.settings.home),
        PEMREG_DATABASE_URL=reg.settings.resolved_database_url,
        PEMREG_ARTIFACT_STORE=reg.settings.resolved_artifact_store,
        COLUMNS="80",
    )
    # `make demo` ran first: it issued no key, so `pemreg init` shows the first admin key.
    initialize(reg, first_key=False)
    first = _cli(env, "init")
    assert first.returncode == 0 and first.stdout.strip().splitlines()[-1].startswith("pemreg_")

    long_a, long_b = "acme/summaries-of-news-in-many-languages", "acme/medicine-questions-and-answers"
    service.register_adapter(reg, _lora(tmp_path / "a", "tiny-llama"), long_a)
    service.register_adapter(reg, _lora(tmp_path / "b", "tiny-llama", seed=2), long_b)
    spec = load_spec(
        f"name: acme/summaries-and-medicine-merged\nexpression: '0.5 * {long_a} + 0.5 * {long_b}'\n"
    )
    run = runs.create(reg, spec, resolve_inputs(reg, spec), "cli")
    runs.transition(reg, run.id, RunStatus.RUNNING)
    listing = _cli(env, "compositions", "list")
    assert listing.returncode == 0, listing.stderr
    assert run.id in listing.stdout and "acme/summaries-and-medicine-merged" in listing.stdout
    assert "…" not in listing.stdout and max(map(len, listing.stdout.splitlines())) <= 80

    digest = sha256_file(tmp_path / "a" / WEIGHTS)
    audit = _cli(env, "audit", f"sha256:{digest[:12]}")
    assert audit.returncode == 0, audit.stderr
    assert f"sha256:{digest} is {WEIGHTS} of adapter version {long_a}@1" in audit.stdout

    assert _cli(env, "adapters", "archive", f"{long_b}@1").returncode == 0
    shown = _cli(env, "adapters", "show", long_b)
    assert "no active or deprecated versions (1 archived); --include-archived lists them" in shown.stdout
    bare = _cli(env, "adapters", "delete", long_a, "--yes")
    assert (
        bare.returncode == 1
        and bare.stderr.strip()
        == f"error: {long_a} names no version; write {long_a}@N (or pass --all-versions)"
    )
    gone = _cli(env, "adapters", "delete", f"{long_a}@1", "--yes")
    assert gone.returncode == 0 and f"adapters undelete {long_a}@1" in " ".join(gone.stdout.split())
    back = _cli(env, "adapters", "undelete", f"{long_a}@1")
    assert back.returncode == 0 and back.stdout.strip() == f"{long_a}@1 is active again"


def test_missing_density_names_the_method_line() -> None:
    with pytest.raises(InvalidInput, match=r"^density \(line 3\): method ties needs density"):
        load_spec("name: acme/x\nexpression: 'acme/a + acme/b'\nmethod: ties\nseed: 1\n")
    with pytest.raises(InvalidInput, match=r"^density \(line 4\)"):
        load_spec("name: acme/x\nexpression: 'acme/a + acme/b'\nmethod: ties\ndensity: 2\n")


def test_demo_quick_reports_beside_the_full_run(tmp_path: Path) -> None:
    from registry.demo.scenarios import default_out_dir

    full, quick = default_out_dir(tmp_path, False), default_out_dir(tmp_path, True)
    assert full == tmp_path / "demo" and quick.parent == tmp_path and quick != full
    assert not quick.is_relative_to(full)  # the full run's report.md / demo.png are never written over
