"""The lifecycle commands in local mode (embedded default): what a user types and sees (commands run in
this process: tests/cli_inproc.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.service import Registry
from registry.service.catalog.resolve import resolve_version
from registry.settings import Settings
from tests.cli_inproc import pemreg as _run


def test_lifecycle_commands_local(adapter_dirs: dict[str, Path], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PEMREG_")}
    env.update(PEMREG_HOME=str(tmp_path / "home"), PEMREG_PRINCIPAL="cli-user", COLUMNS="200")
    assert _run(env, "init").returncode == 0
    for folder, name in (("lora", "acme/math"), ("lora2", "acme/math"), ("lora_gpt2", "acme/child")):
        assert _run(env, "adapters", "add", str(adapter_dirs[folder]), "--name", name).returncode == 0
    reg = Registry(Settings(home=tmp_path / "home"))
    with transaction(reg.sessions) as session:  # the edge a composition would record
        parent, child = (
            resolve_version(session, "acme/math@1", access=reg.acting),
            resolve_version(session, "acme/child@1", access=reg.acting),
        )
        session.add(
            m.LineageEdge(parent_version_id=parent.id, child_version_id=child.id, operator="linear", weight=1)
        )

    assert _run(env, "adapters", "archive", "acme/math@2").stdout.strip() == "acme/math@2 is archived"
    shown = json.loads(_run(env, "adapters", "show", "acme/math", "--json").stdout)
    assert shown["latest_version"] == 1 and [v["version"] for v in shown["versions"]] == [1]
    assert "archived" in _run(env, "adapters", "show", "acme/math", "--include-archived").stdout
    assert _run(env, "adapters", "restore", "acme/math@2").returncode == 0
    assert _run(env, "adapters", "deprecate", "acme/math@1").stdout.strip() == "acme/math@1 is deprecated"
    assert "[deprecated]" in _run(env, "adapters", "show", "acme/math@1").stdout

    refused = _run(env, "adapters", "delete", "acme/math@1", "--yes")
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        "error: acme/math@1: cannot delete, versions descend from it: acme/child@1 "
        "(delete or archive those first)"
    ]
    assert _run(env, "adapters", "delete", "acme/child@1", "--yes").returncode == 0
    done = _run(env, "adapters", "delete", "acme/math@1", "--yes")
    assert done.returncode == 0 and done.stdout.startswith("acme/math@1 deleted (sha256:")
    tree = _run(env, "lineage", "acme/child@1").stdout
    assert "acme/math@1 (deleted, sha256:" in tree and "acme/child@1 (deleted, sha256:" in tree

    assert _run(env, "adapters", "tag", "acme/math", "team=nlp").stdout.strip() == "acme/math tags: team=nlp"
    assert _run(env, "adapters", "describe", "acme/math", "sums").stdout.strip() == "acme/math: sums"
    assert _run(env, "adapters", "alias", "acme/math@2", "prod").returncode == 0
    removed = _run(env, "adapters", "alias", "acme/math", "prod", "--delete")
    assert removed.stdout.strip() == "acme/math@prod removed (pointed at version 2)"
    log = _run(env, "audit-log", "--subject", "acme/math").stdout
    for action in (
        "version_archive",
        "version_restore",
        "version_deprecate",
        "version_delete",
        "alias_delete",
    ):
        assert action in log
    assert "admin" in _run(env, "keys", "list").stdout
