"""The README's five-minute tour, run twice from the same folders: once in local mode (this machine's
SQLite catalog and file store) and once in remote mode (`pemreg serve` on PostgreSQL + SeaweedFS, the
CLI holding only PEMREG_URL and a key). Every catalog row the tour creates, base models included, must
be the same in both (ids, timestamps, run ids and the registry's generated files aside).

The adapters' configs name their base as PEFT wrote it on the training machine: `my-base`, a relative
path without `./`. Local mode used to match it through the disk and remote mode to invent a base model
called `my-base`; both now decide from the folder's evidence, so the catalogs agree.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from registry.catalog import models as m
from registry.catalog.db import get_engine
from registry.catalog.migrate import upgrade
from tests.cli_inproc import PROGRAM, pemreg
from tests.factories import make_lora, save_tiny_base
from tests.live_server import Server, clean_env, run_server
from tests.s3_service import S3Service

PRINCIPAL = "admin-key"  # the remote key's name: local mode's operator has the same name ...
KEY_PRINCIPAL = f"key:{PRINCIPAL}"  # ... and remote mode records the key's principal, compared as it
CARD = "---\nlicense: apache-2.0\n---\n# acme/math\n\nMy own card, kept byte for byte.\n"
MERGE = """\
name: acme/math-medicine
expression: "0.5 * acme/math@prod + 0.5 * acme/medicine"
output: {aliases: [candidate]}
recompose: on_parent_update
"""
GENERATED = {"MODEL_CARD.md", "provenance.json"}  # written by the registry: timestamps inside


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """./my-base, ./my-lora (with the user's README.md), ./other-lora and merge.yaml, as in the tour."""
    work = tmp_path_factory.mktemp("tour")
    save_tiny_base(work / "my-base")
    for name, seed in (("my-lora", 1), ("other-lora", 2)):
        make_lora(work / name, seed=seed)
        config = json.loads((work / name / "adapter_config.json").read_text())
        config["base_model_name_or_path"] = "my-base"
        (work / name / "adapter_config.json").write_text(json.dumps(config))
    (work / "my-lora" / "README.md").write_text(CARD)
    (work / "merge.yaml").write_text(MERGE)
    return work


@pytest.fixture(scope="module")
def server(
    pg_url: str,
    s3_service: S3Service,
    warm_home: tuple[Path, int],
    folders: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    home, port = warm_home
    yield from run_server(
        pg_url,
        s3_service,
        tmp_path_factory.mktemp("tour-server"),
        home=home,
        test_bases=False,
        PEMREG_LOCAL_PREFECT_PORT=str(port),
        PEMREG_PREFECT_MODE="local-server",
        PEMREG_SOURCE_ROOTS=str(folders),  # the server may name the tour's base folder (same machine)
    )


def _tour(env: dict[str, str], cwd: Path, out: str) -> dict[str, str]:
    """The README tour's commands, in its order; returns each command's stdout."""
    steps = [
        ("base-models", "add", "tiny-llama", "--source", "./my-base"),
        (
            "adapters",
            "add",
            "./my-lora",
            "--name",
            "acme/math",
            "--task",
            "math",
            "--tag",
            "team=nlp",
            "--metric",
            "accuracy=0.91",
            "--param",
            "lr=1e-4",
        ),
        ("adapters", "add", "./other-lora", "--name", "acme/medicine", "--task", "medicine"),
        ("adapters", "list", "--task", "math", "--json"),
        ("adapters", "show", "acme/math"),
        ("adapters", "alias", "acme/math@1", "prod"),
        ("adapters", "download", "acme/math@prod", out),
        ("compose", "merge.yaml", "--dry-run"),
        ("compose", "merge.yaml", "--wait"),
        ("compose", "merge.yaml"),
        ("compositions", "list"),
        ("lineage", "acme/math-medicine@candidate"),
        ("audit", f"{out}/adapter_model.safetensors"),
        ("audit-log", "--subject", "acme/math"),
        ("base-models", "show", "tiny-llama"),
    ]
    printed = {}
    local = "PEMREG_URL" not in env
    for args in steps:
        # In the test process (tests/cli_inproc.py: the same main(), argv, environment, working directory),
        # but local mode's compositions: they hand the run to the local runner, a process the command starts.
        hands_off = local and args[0] == "compose" and "--dry-run" not in args
        done = (
            subprocess.run([*PROGRAM, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
            if hands_off
            else pemreg(env, *args, cwd=cwd)
        )
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        printed[" ".join(args)] = done.stdout
    return printed


def _rows(url: str) -> dict[str, list[Any]]:
    """Every row the tour creates, keyed by what identifies it in any catalog (names, versions,
    digests), without ids, timestamps, run ids or the store's root."""
    with get_engine(url).connect() as conn:

        def all_of(model: Any) -> list[Any]:
            return list(conn.execute(select(model)).mappings())

        bases = {r["id"]: f"{r['name']}@{r['revision']}" for r in all_of(m.BaseModel)}
        adapters = {r["id"]: f"{r['namespace']}/{r['name']}" for r in all_of(m.Adapter)}
        versions = {r["id"]: f"{adapters[r['adapter_id']]}@{r['version']}" for r in all_of(m.AdapterVersion)}
        runs = {
            r["id"]: i for i, r in enumerate(sorted(all_of(m.Composition), key=lambda r: r["created_at"]))
        }

        def files(entries: dict[str, Any]) -> dict[str, Any]:
            return {k: (v if k not in GENERATED else "generated") for k, v in sorted(entries.items())}

        rows: dict[str, list[Any]] = {
            "base_models": [
                (
                    r["name"],
                    r["revision"],
                    r["source"],
                    r["sha256"],
                    r["architecture"],
                    r["config_sha256"],
                    json.dumps(r["config"], sort_keys=True),
                    r["created_by"],
                )
                for r in all_of(m.BaseModel)
            ],
            "adapters": [
                (
                    adapters[r["id"]],
                    r["pem_type"],
                    r["task"],
                    r["description"],
                    bases[r["base_model_id"]],
                    r["created_by"],
                )
                for r in all_of(m.Adapter)
            ],
            "adapter_tags": [(adapters[r["adapter_id"]], r["key"], r["value"]) for r in all_of(m.AdapterTag)],
            "adapter_versions": [
                (
                    versions[r["id"]],
                    r["sha256"],
                    r["rank"],
                    r["alpha"],
                    r["use_rslora"],
                    r["target_modules"],
                    r["dtype"],
                    r["size_bytes"],
                    r["num_parameters"],
                    files(r["files"]),
                    json.dumps(r["extra"], sort_keys=True),
                    r["artifact_uri"].split("/adapters/", 1)[1],
                    r["created_by"],
                    r["status"],
                )
                for r in all_of(m.AdapterVersion)
            ],
            "aliases": [
                (adapters[r["adapter_id"]], r["alias"], versions[r["version_id"]], r["updated_by"])
                for r in all_of(m.Alias)
            ],
            "lineage_edges": [
                (
                    versions[r["parent_version_id"]],
                    versions[r["child_version_id"]],
                    r["operator"],
                    r["weight"],
                    runs[r["composition_id"]],
                )
                for r in all_of(m.LineageEdge)
            ],
            "compositions": [
                (
                    runs[r["id"]],
                    r["cache_key"],
                    r["output_name"],
                    r["method"],
                    json.dumps(r["spec"], sort_keys=True),
                    json.dumps(
                        [{**i, "files": files(i.get("files") or {})} for i in r["resolved_inputs"]],
                        sort_keys=True,
                    ),
                    r["status"],
                    versions.get(r["output_version_id"]),
                    json.dumps(r["metrics"], sort_keys=True),
                    json.dumps(r["interference"], sort_keys=True),
                    r["error"],
                    r["cache_hit"],
                    r["principal"],
                    r["attempt"],
                )
                for r in all_of(m.Composition)
            ],
            "evaluations": [(versions[r["version_id"]], r["name"], r["value"]) for r in all_of(m.Evaluation)],
            "merged_models": [(r["name"], r["sha256"]) for r in all_of(m.MergedModel)],
            "training_values": [
                (versions[r["version_id"]], r["kind"], r["name"], r["value"], r["number"])
                for r in all_of(m.TrainingValue)
            ],
            "artifact_files": [
                (
                    versions.get(r["version_id"]),
                    r["filename"],
                    r["digest"] if r["filename"] not in GENERATED else "",
                )
                for r in all_of(m.ArtifactFile)
            ],
            # What happened, in order of kind (the remote catalog also holds its keys' creation).
            "audit_events": [
                (r["actor"], r["action"], r["subject"])
                for r in all_of(m.AuditEvent)
                if not r["subject"].startswith("key:")
            ],
        }
    return {table: sorted(map(_plain, found), key=repr) for table, found in rows.items()}


def _plain(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(
        json.dumps(v, sort_keys=True)
        if isinstance(v, dict | list)
        else PRINCIPAL
        if v == KEY_PRINCIPAL
        else v
        for v in row
    )


def test_readme_tour_creates_the_same_catalog_in_local_and_remote_mode(
    server: Server, folders: Path, warm_home: tuple[Path, int], tmp_path: Path
) -> None:
    home, port = warm_home
    local_url = f"sqlite:///{tmp_path / 'local.db'}"
    upgrade(local_url)
    local_env = clean_env(
        PEMREG_HOME=str(home),  # its warm Prefect server runs the local compositions
        PEMREG_LOCAL_PREFECT_PORT=str(port),
        PEMREG_DATABASE_URL=local_url,
        PEMREG_ARTIFACT_STORE=(tmp_path / "local-store").as_uri(),
        PEMREG_PRINCIPAL=PRINCIPAL,
        COLUMNS="200",
    )
    remote_home = tmp_path / "remote-home"
    remote_home.mkdir()
    remote_env = clean_env(
        PEMREG_URL=server.url,
        PEMREG_API_KEY=server.keys["admin"],
        PEMREG_HOME=str(remote_home),
        COLUMNS="200",
    )
    local = _tour(local_env, folders, "out-local")
    remote = _tour(remote_env, folders, "out-remote")
    try:
        for out in ("out-local", "out-remote"):  # your README.md comes back byte for byte, in both modes
            assert (folders / out / "README.md").read_text() == CARD
            assert (folders / out / "MODEL_CARD.md").is_file()

        def said(printed: dict[str, str], command: str) -> str:
            return next(out for args, out in printed.items() if args.startswith(command))

        for printed in (local, remote):
            assert said(printed, "adapters add ./my-lora").startswith("registered acme/math@1 ")
            assert "acme/math" in said(printed, "base-models show tiny-llama")
            assert "(cache hit" in printed["compose merge.yaml"]
        for same in ("lineage", "compose merge.yaml --dry-run"):  # (other outputs show times)
            assert said(local, same) == said(remote, same), same

        mine, theirs = _rows(local_url), _rows(server.reg.settings.resolved_database_url)
        assert mine["base_models"] and len(mine["base_models"]) == 1  # one base: no `my-base` invented
        assert len(mine["compositions"]) == 2 and len(mine["lineage_edges"]) == 2
        for table in mine:
            for a, b in zip(mine[table], theirs[table], strict=False):  # name the differing column
                assert a == b, (
                    table,
                    [(i, x, y) for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y],
                )
            assert mine[table] == theirs[table], table
    finally:
        for out in ("out-local", "out-remote"):
            shutil.rmtree(folders / out, ignore_errors=True)
