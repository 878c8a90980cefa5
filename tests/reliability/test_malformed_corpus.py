"""The malformed-config corpus over REST (multipart upload) and the CLI (`pemreg adapters add`), on
PostgreSQL + SeaweedFS: no 5xx, every refusal names its field (REST `detail`, CLI one line, exit 1),
and the store and the catalog hold exactly what they held before."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from registry import service
from registry.service import Registry
from registry.service.admin.keys import create_key
from tests.catalog_helpers import snapshot
from tests.cli_inproc import pemreg
from tests.pg_service import truncate_all
from tests.reliability.corpus import CASES, CONFIG, WEIGHTS, Case
from tests.s3_service import S3Service

pytestmark = [pytest.mark.postgres, pytest.mark.s3]


@pytest.fixture(scope="module")
def world(
    pg_url: str,
    s3_service: S3Service,
    tmp_path_factory: pytest.TempPathFactory,
    adapter_dirs: dict[str, Path],
) -> Iterator[dict[str, object]]:
    home = tmp_path_factory.mktemp("corpus")
    store_url = f"s3://{s3_service.bucket}/corpus-{os.getpid()}"
    settings = s3_service.settings(
        home=home / "home", database_url=pg_url, store_url=store_url, principal="c"
    )
    reg = Registry(settings)
    reg.store.ensure_ready()
    service.register_adapter(reg, adapter_dirs["lora"], "rel/corpus")  # base tiny-llama now registered
    key = create_key(reg, "corpus-writer", "writer")
    folders = {case.id: case.build(adapter_dirs["lora"], home / case.id) for case in CASES}
    env = {**s3_service.settings_env(store_url), "PEMREG_DATABASE_URL": pg_url, "PEMREG_HOME": str(home)}
    yield {"reg": reg, "key": key, "folders": folders, "env": env, "settings": settings}
    truncate_all(pg_url)


def _upload(client: TestClient, key: str, folder: Path, case: Case) -> tuple[int, dict[str, object]]:
    data: dict[str, object] = {"name": case.name}
    if case.base_model is not None:
        data["base_model"] = case.base_model
    if case.tags:
        data["tags"] = case.tags
    files = {
        "config": (CONFIG, (folder / CONFIG).read_bytes()),
        "weights": (WEIGHTS, (folder / WEIGHTS).read_bytes()),
    }
    response = client.post("/v1/adapters", data=data, files=files, headers={"Authorization": f"Bearer {key}"})
    return response.status_code, response.json()


def test_corpus_over_rest_changes_nothing(world: dict[str, object]) -> None:
    reg = world["reg"]
    assert isinstance(reg, Registry)
    before = snapshot(reg)
    statuses: list[int] = []
    with TestClient(create_app(reg.settings)) as client:
        for case in CASES:
            folder = world["folders"][case.id]  # type: ignore[index]
            status, body = _upload(client, str(world["key"]), folder, case)
            statuses.append(status)
            assert 400 <= status < 500, (case.id, status, body)
            detail = str(body.get("detail", ""))
            assert case.expect in detail, (case.id, detail)
            assert "\n" not in detail, (case.id, detail)
    assert snapshot(reg) == before
    print(f"REST corpus: {len(CASES)} cases, 5xx: {sum(s >= 500 for s in statuses)}, left behind: 0")


def _cli(env: dict[str, str], *args: str) -> tuple[int, list[str]]:
    """`pemreg` in this process (tests/cli_inproc.py; a subprocess per case would spend ~3 s importing)."""
    done = pemreg({**os.environ, **env}, *args)
    return done.returncode, done.stderr.strip().splitlines()


def _cli_args(case: Case, folder: Path) -> list[str]:
    args = ["adapters", "add", str(folder), "--name", case.name]
    if case.base_model is not None:
        args += ["--base-model", case.base_model]
    for tag in case.tags:
        args += ["--tag", tag]
    return args


def test_corpus_over_cli_changes_nothing(world: dict[str, object]) -> None:
    reg = world["reg"]
    assert isinstance(reg, Registry)
    before = snapshot(reg)
    env = world["env"]
    assert isinstance(env, dict)
    for case in CASES:
        folder = world["folders"][case.id]  # type: ignore[index]
        code, lines = _cli(env, *_cli_args(case, folder))
        assert code == 1, (case.id, code, lines)
        assert len(lines) == 1 and lines[0].startswith("error: "), (case.id, lines)
        assert case.expect in lines[0], (case.id, lines[0])
    assert snapshot(reg) == before
    print(f"CLI corpus: {len(CASES)} cases, all exit 1 with one line, left behind: 0")


def test_cli_subprocess_newline_name_one_line(world: dict[str, object]) -> None:
    """The same through a real `pemreg` process (its own stderr, its own exit code)."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PEMREG_")}, **world["env"]}  # type: ignore[dict-item]
    folder = world["folders"]["name-newline"]  # type: ignore[index]
    done = subprocess.run(
        [sys.executable, "-m", "api.cli.main", "adapters", "add", str(folder), "--name", "rel/abc\n"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "name" in lines[0], done.stderr
