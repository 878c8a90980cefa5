"""Remote mode: the README tour's catalog part through `pemreg serve` (PostgreSQL + SeaweedFS), from an
environment holding only PEMREG_URL and PEMREG_API_KEY (no database URL, no S3 credentials, an empty
PEMREG_HOME); the same output as local mode; `login` / `logout`; server-only commands refuse. Commands
run in this process (tests/cli_inproc.py), but for the import checks, which need a process of their own."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from registry.hashing import sha256_file
from tests.cli_inproc import pemreg as _run
from tests.live_server import Server, clean_env

WEIGHTS = "adapter_model.safetensors"


def _ok(env: dict[str, str], *args: str) -> str:
    done = _run(env, *args)
    assert done.returncode == 0, (args, done.stderr)
    return done.stdout


def _fails(env: dict[str, str], *args: str) -> str:
    done = _run(env, *args)
    assert done.returncode == 1, (args, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


def test_readme_catalog_tour_in_remote_mode(
    live_server: Server, adapter_dirs: dict[str, Path], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = clean_env(
        PEMREG_URL=live_server.url,
        PEMREG_API_KEY=live_server.keys["admin"],
        PEMREG_HOME=str(home),
        COLUMNS="200",
    )
    assert not any(k.startswith(("PEMREG_DATABASE", "PEMREG_S3", "PEMREG_ARTIFACT", "AWS_")) for k in env)

    assert "runs on the server" in _fails(env, "init")
    assert "runs on the server" in _fails(env, "serve")

    assert "registered tour-base@main" in _ok(
        env, "base-models", "add", "tour-base", "--source", "org/tour-base"
    )
    assert "tour-base" in _ok(env, "base-models", "list")
    # A folder source is read here for its identity (config.json, weights digest), never by the server.
    assert "has no readable config.json" in _fails(env, "base-models", "add", "b", "--source", str(tmp_path))
    math = adapter_dirs["lora"]
    added = _ok(
        env, "adapters", "add", str(math), "--name", "tour/math", "--task", "math", "--tag", "team=nlp"
    )
    assert added.startswith("registered tour/math@1 ")
    _ok(env, "adapters", "add", str(adapter_dirs["ia3"]), "--name", "tour/medicine", "--task", "medicine")
    listed = json.loads(_ok(env, "adapters", "list", "--task", "math", "--json"))
    assert [a["name"] for a in listed["items"]] == ["tour/math"]
    assert "tour/math" in _ok(env, "adapters", "show", "tour/math")
    assert "tour/math@prod -> version 1" in _ok(env, "adapters", "alias", "tour/math@1", "prod")

    out = tmp_path / "out"
    assert "sha256 verified" in _ok(env, "adapters", "download", "tour/math@prod", str(out))
    assert (out / WEIGHTS).read_bytes() == (math / WEIGHTS).read_bytes()
    assert "not empty" in _fails(env, "adapters", "download", "tour/math@prod", str(out))

    assert _ok(env, "lineage", "tour/math@prod").strip() == "tour/math@1"
    digest = sha256_file(out / WEIGHTS)
    audit = _ok(env, "audit", str(out / WEIGHTS))
    assert f"sha256:{digest} is {WEIGHTS} of adapter version tour/math@1" in audit
    assert "alias_move" in _ok(env, "audit-log", "--subject", "tour/math")
    assert "admin-key" in _ok(env, "keys", "list")

    # The lifecycle, through the API.
    assert "tour/math@1 is deprecated" in _ok(env, "adapters", "deprecate", "tour/math@1")
    assert "tour/math@1 is archived" in _ok(env, "adapters", "archive", "tour/math@1")
    assert "tour/math@1 is active" in _ok(env, "adapters", "restore", "tour/math@1")
    assert "stage=dev" in _ok(env, "adapters", "tag", "tour/math", "stage=dev")
    assert "math skills" in _ok(env, "adapters", "describe", "tour/math", "math skills")
    assert "removed (pointed at version 1)" in _ok(env, "adapters", "alias", "tour/math", "prod", "--delete")
    writer_env = {**env, "PEMREG_API_KEY": live_server.keys["writer"]}
    assert "needs maintainer" in _fails(writer_env, "adapters", "delete", "tour/medicine@1", "--yes")
    assert "deleted" in _ok(env, "adapters", "delete", "tour/medicine@1", "--yes")
    events = _ok(env, "audit-log", "--subject", "tour/math")
    assert all(
        a in events for a in ("version_deprecate", "version_archive", "version_restore", "adapter_update")
    )

    assert "adapter tour/nope not found" in _fails(env, "adapters", "show", "tour/nope")
    assert "invalid" in _fails({**env, "PEMREG_API_KEY": "pemreg_00000000_wrong"}, "adapters", "list")
    assert list(home.iterdir()) == []  # no local catalog, store or config was made

    spec = tmp_path / "merge.yaml"
    spec.write_text(
        "name: tour/math-twice\nmethod: delta_cat\nexpression: '0.5 * tour/math@1 + 0.5 * tour/math@1'\n"
    )
    assert "nothing composed (dry run)" in _ok(env, "compose", str(spec), "--dry-run")
    assert json.loads(_ok(env, "compositions", "list", "--json")) == []

    # Same output as local mode, against the same catalog and store.
    local = clean_env(**live_server.server_env)
    local.update(PEMREG_HOME=str(tmp_path / "local-home"), COLUMNS="200")
    for args in (
        ("adapters", "show", "tour/math"),
        ("adapters", "show", "tour/math@1"),
        ("adapters", "list", "--json"),
        ("lineage", "tour/math@1", "--format", "json"),
        ("audit", f"sha256:{digest}"),
        ("compose", str(spec), "--dry-run"),
    ):
        assert _ok(env, *args) == _ok(local, *args), args


def test_login_saves_a_private_config_and_logout_forgets_it(live_server: Server, tmp_path: Path) -> None:
    env = clean_env(PEMREG_HOME=str(tmp_path / "home"), COLUMNS="200")
    assert "invalid" in _fails(env, "login", live_server.url, "--api-key", "pemreg_00000000_wrong")
    assert not (tmp_path / "home" / "remote.json").exists()  # a refused key is not saved
    assert "logged in" in _ok(env, "login", live_server.url, "--api-key", live_server.keys["reader"])
    config = tmp_path / "home" / "remote.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert json.loads(config.read_text()) == {"url": live_server.url, "api_key": live_server.keys["reader"]}
    json.loads(_ok(env, "adapters", "list", "--json"))  # through the saved server
    assert "runs on the server" in _fails(env, "init")
    assert "logged out" in _ok(env, "logout")
    assert not config.exists()


def _options(help_text: str) -> list[str]:
    """The option lines of a --help page (name and help text), whitespace-normalised."""
    options: list[str] = []
    for line in help_text.split("Options:", 1)[1].splitlines():
        if line.strip().startswith("--"):
            options.append(" ".join(line.split()))
        elif line.strip() and options:  # a wrapped help text continues the option above
            options[-1] += " " + " ".join(line.split())
    return options


def test_compose_commands_have_the_same_options_and_help_in_both_modes(tmp_path: Path) -> None:
    """remote_compose reuses compose.py's options and printing; only local-only options differ."""
    local = clean_env(PEMREG_HOME=str(tmp_path / "home"), COLUMNS="200")
    remote = {**local, "PEMREG_URL": "http://127.0.0.1:9"}  # --help never contacts it
    for args, local_only in (
        (("compositions", "list"), "--page-token"),
        (("compositions", "show"), None),
        (("compose",), "--verbose"),
    ):
        mine, theirs = _options(_ok(local, *args, "--help")), _options(_ok(remote, *args, "--help"))
        assert [o for o in mine if not (local_only and o.startswith(local_only))] == theirs, args
        assert all(len(o.split()) > 1 for o in theirs), theirs  # every option has help text
    assert "Runs, newest first." in _ok(remote, "compositions", "list", "--help")


def test_remote_catalog_commands_import_no_heavy_module(live_server: Server, tmp_path: Path) -> None:
    """The catalog reads of remote mode go through registry.client.ReadClient (http.client): no httpx,
    no SQLAlchemy, pydantic-settings, torch or Prefect in the process."""
    from tests.cli_imports import heavy_in, run_and_list_modules

    env = clean_env(
        PEMREG_URL=live_server.url, PEMREG_API_KEY=live_server.keys["admin"], PEMREG_HOME=str(tmp_path)
    )
    for args in (
        ("adapters", "list"),
        ("adapters", "list", "--query", "tour", "--task", "math"),
        ("adapters", "show", "tour/nope"),
        ("adapters", "show", "tour/nope@1"),
        ("lineage", "tour/nope@1"),
        ("base-models", "list"),
        ("base-models", "show", "no-such-base"),
        ("audit-log", "--limit", "5"),
        ("keys", "list"),
        ("whoami",),
        ("namespaces", "list"),
        ("namespaces", "show", "tour"),
        ("compositions", "list"),
    ):
        done, modules = run_and_list_modules(env, *args)
        assert done.returncode in (0, 1), (args, done.stderr)
        assert heavy_in(modules) == set(), (args, sorted(heavy_in(modules)))
