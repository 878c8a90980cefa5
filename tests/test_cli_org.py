"""`pemreg namespaces ...`, `pemreg whoami` and `pemreg login --token`: locally (the operator, on the
catalog's own database) and remotely through `pemreg serve` with SSO against the test OIDC provider."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_inproc import pemreg
from tests.live_server import Server, clean_env, run_server
from tests.oidc_service import CLI_CLIENT, OidcProvider
from tests.s3_service import S3Service


def _run(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return pemreg(env, *args, input=stdin)  # in this process (tests/cli_inproc.py)


def _ok(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    done = _run(env, *args, stdin=stdin)
    assert done.returncode == 0, (args, done.stderr)
    return done.stdout


def _fails(env: dict[str, str], *args: str, code: int = 1) -> str:
    done = _run(env, *args)
    assert done.returncode == code, (args, done.stdout, done.stderr)
    if code == 1:
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
        return lines[0]
    return done.stderr


def test_namespaces_locally(tmp_path: Path) -> None:
    env = clean_env(PEMREG_HOME=str(tmp_path / "home"), PEMREG_PRINCIPAL="ops", COLUMNS="200")
    _ok(env, "init")
    made = _ok(
        env,
        "namespaces",
        "create",
        "acme",
        "--visibility",
        "private",
        "--protect",
        "prod",
        "--protect",
        "release-*",
    )
    assert made.strip() == "created private namespace acme"
    assert _ok(env, "namespaces", "grant", "acme", "key:bob", "writer").strip() == "key:bob is writer in acme"
    assert "must be reader, writer or maintainer" in _fails(
        env, "namespaces", "grant", "acme", "key:bob", "owner", code=2
    )
    shown = json.loads(_ok(env, "namespaces", "show", "acme", "--json"))
    assert (shown["visibility"], shown["protected_aliases"], shown["owned"]) == (
        "private",
        ["prod", "release-*"],
        True,
    )
    assert [(g["subject"], g["role"], g["granted_by"]) for g in shown["grants"]] == [
        ("key:bob", "writer", "ops")
    ]
    assert "acme: internal; protected aliases: none" in _ok(
        env, "namespaces", "set", "acme", "--visibility", "internal", "--no-protect"
    )
    assert "nothing to change" in _fails(env, "namespaces", "set", "acme", code=2)
    listed = _ok(env, "namespaces", "list")
    assert "acme" in listed and "internal" in listed and "admin" in listed
    assert _ok(env, "namespaces", "revoke", "acme", "key:bob").strip() == "revoked key:bob in acme"
    assert "namespace nope not found" in _fails(env, "namespaces", "show", "nope")
    assert _ok(env, "whoami").strip() == "ops, global role admin"  # the operator: the database is theirs
    events = _ok(env, "audit-log", "--subject", "acme")
    for action in (
        "namespace_create",
        "grant_set",
        "namespace_visibility",
        "namespace_protection",
        "grant_revoke",
    ):
        assert action in events


@pytest.fixture(scope="module")
def sso_server(
    pg_url: str, s3_service: S3Service, tmp_path_factory: pytest.TempPathFactory, oidc: OidcProvider
) -> Iterator[Server]:
    yield from run_server(
        pg_url,
        s3_service,
        tmp_path_factory.mktemp("sso-server"),
        PEMREG_OIDC_ISSUER=oidc.issuer,
        PEMREG_OIDC_AUDIENCE=CLI_CLIENT,
    )


@pytest.mark.postgres
@pytest.mark.s3
def test_sso_users_in_remote_mode(
    sso_server: Server, oidc: OidcProvider, adapter_dirs: dict[str, Path], tmp_path: Path
) -> None:
    admin = clean_env(
        PEMREG_URL=sso_server.url, PEMREG_API_KEY=sso_server.keys["admin"], PEMREG_HOME=str(tmp_path / "a")
    )
    _ok(admin, "namespaces", "create", "team", "--visibility", "private", "--protect", "prod")
    _ok(admin, "namespaces", "grant", "team", "group:ml-team", "writer")

    ada = clean_env(PEMREG_HOME=str(tmp_path / "ada"), COLUMNS="200")
    logged = _ok(ada, "login", sso_server.url, "--token", "-", stdin=oidc.id_token("ada") + "\n")
    assert logged.startswith(f"logged in to {sso_server.url} as user:ada-0001")
    assert _ok(ada, "whoami").splitlines() == [
        "user:ada-0001 (groups: ml-team), global role reader",
        "  team: writer via group:ml-team",
    ]
    assert _ok(ada, "adapters", "add", str(adapter_dirs["lora"]), "--name", "team/skill").startswith(
        "registered team/skill@1 "
    )
    assert "team/skill@staging -> version 1" in _ok(ada, "adapters", "alias", "team/skill@1", "staging")
    assert "needs maintainer" in _fails(ada, "adapters", "alias", "team/skill@1", "prod")
    assert "writer" in _ok(ada, "namespaces", "list")

    bob = clean_env(PEMREG_HOME=str(tmp_path / "bob"))
    _ok(bob, "login", sso_server.url, "--token", oidc.id_token("bob"))
    assert _fails(bob, "adapters", "show", "team/skill") == "error: adapter team/skill not found"
    assert "team" not in _ok(bob, "namespaces", "list")
    assert "token" in _fails(bob, "login", sso_server.url, "--token", "not.a.token")
