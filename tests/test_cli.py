"""The `pemreg` CLI as a user runs it: embedded default, and Postgres + S3 via env vars. Commands run in
this process (tests/cli_inproc.py: the same main(), environment and output); the exit statuses of errors
and of a usage error are also checked on a real `pemreg` process."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from registry.hashing import sha256_file
from registry.service import Registry
from registry.settings import Settings
from tests.catalog_helpers import snapshot
from tests.cli_inproc import child
from tests.cli_inproc import pemreg as _run
from tests.pg_service import truncate_all


@pytest.fixture(params=["sqlite+file", "postgres+s3"])
def cli_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PEMREG_")}
    env.update(PEMREG_HOME=str(tmp_path / "home"), PEMREG_PRINCIPAL="cli-user", COLUMNS="200")
    if request.param == "postgres+s3":
        s3 = request.getfixturevalue("s3_service")
        url = request.getfixturevalue("pg_url")
        env.update(s3.settings_env(request.getfixturevalue("s3_store_url")), PEMREG_DATABASE_URL=url)
        request.addfinalizer(lambda: truncate_all(url))
    return env


def test_cli_end_to_end(cli_env: dict[str, str], adapter_dirs: dict[str, Path], tmp_path: Path) -> None:
    init = _run(cli_env, "init")
    assert init.returncode == 0, init.stderr
    assert init.stdout.strip().splitlines()[-1].startswith("pemreg_")

    add = _run(
        cli_env,
        "adapters",
        "add",
        str(adapter_dirs["lora"]),
        "--name",
        "acme/math",
        "--task",
        "math",
        "--tag",
        "team=a",
    )
    assert add.returncode == 0, add.stderr
    assert "registered acme/math@1" in add.stdout
    again = _run(cli_env, "adapters", "add", str(adapter_dirs["lora"]), "--name", "acme/math", "--json")
    assert json.loads(again.stdout)["created"] is False and json.loads(again.stdout)["version"] == 1
    assert _run(cli_env, "adapters", "add", str(adapter_dirs["ia3"]), "--name", "acme/style").returncode == 0

    listing = json.loads(_run(cli_env, "adapters", "list", "--json").stdout)
    assert [a["name"] for a in listing["items"]] == ["acme/math", "acme/style"]
    tagged = json.loads(_run(cli_env, "adapters", "list", "--tag", "team=a", "--json").stdout)
    assert [a["name"] for a in tagged["items"]] == ["acme/math"]

    shown = _run(cli_env, "adapters", "show", "acme/math")
    assert shown.returncode == 0 and "acme/math" in shown.stdout

    out = tmp_path / "dl"
    assert _run(cli_env, "adapters", "download", "acme/math@1", str(out)).returncode == 0
    weights = "adapter_model.safetensors"
    assert (out / weights).read_bytes() == (adapter_dirs["lora"] / weights).read_bytes()

    assert _run(cli_env, "adapters", "alias", "acme/math@1", "prod").returncode == 0
    version = json.loads(_run(cli_env, "adapters", "show", "acme/math@prod", "--json").stdout)
    assert version["version"] == 1 and version["aliases"] == ["prod"]

    audit = _run(cli_env, "audit", str(out / weights))
    assert audit.returncode == 0, audit.stderr
    assert f"sha256:{sha256_file(out / weights)} is {weights} of adapter version acme/math@1" in audit.stdout

    lineage = json.loads(_run(cli_env, "lineage", "acme/math@prod", "--format", "json").stdout)
    assert lineage["root"] == "acme/math@1" and lineage["edges"] == []


def test_cli_errors_are_one_line_and_change_nothing(
    cli_env: dict[str, str], adapter_dirs: dict[str, Path], tmp_path: Path
) -> None:
    assert _run(cli_env, "init").returncode == 0
    assert _run(cli_env, "adapters", "add", str(adapter_dirs["lora"]), "--name", "acme/math").returncode == 0
    reg = Registry(
        Settings(
            **{k.removeprefix("PEMREG_").lower(): v for k, v in cli_env.items() if k.startswith("PEMREG_")}
        )
    )
    before = snapshot(reg)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "adapter_config.json").write_text((adapter_dirs["lora2"] / "adapter_config.json").read_text())
    (broken / "adapter_model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00garbage!")
    cases = [
        ("adapters", "add", str(broken), "--name", "acme/math"),
        ("adapters", "add", str(adapter_dirs["lora2"]), "--name", "Bad Name"),
        ("adapters", "add", str(adapter_dirs["ia3"]), "--name", "acme/math"),
        ("adapters", "show", "acme/missing"),
        ("adapters", "alias", "acme/math@9", "prod"),
        ("audit", "sha256:" + "0" * 64),
    ]
    for i, args in enumerate(cases):
        result = (child if i == 0 else _run)(cli_env, *args)  # the first on a real process too
        assert result.returncode == 1, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, result.stderr)
    assert snapshot(reg) == before
    usage = child(cli_env, "adapters", "add")
    assert usage.returncode == 2
