"""What a first-day user meets in the CLI: help, --version, completion, whole ids, readable audit log,
explicit alias versions, safe downloads, an admin key on an initialised home, the model card."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import typer

from api.cli.catalog import format_details
from api.cli.main import app
from registry import __version__
from registry.model_card import render_model_card
from tests.cli_imports import NO_VIEWS, heavy_in, run_and_list_modules
from tests.cli_inproc import pemreg as _run
from tests.factories import make_lora


# Commands defined in api/cli/compose.py, whose help strings are another change's to add.
def _walk(command: Any, path: str = "") -> list[tuple[str, Any]]:
    """(path, command) for the Typer app's click tree (Typer vendors its own click classes)."""
    out = [(path, command)]
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            out += _walk(sub, f"{path} {name}".strip())
    return out


def test_every_command_option_and_argument_is_described() -> None:
    missing = set()
    for path, command in _walk(typer.main.get_command(app)):
        if not path:
            continue
        if not (command.help or "").strip():
            missing.add(path)
        for param in command.params:
            if param.name in ("help", "install_completion", "show_completion"):
                continue
            if not (getattr(param, "help", None) or "").strip():
                label = param.opts[0] if param.param_type_name == "option" else param.name
                missing.add(f"{path} {label}")
    assert not missing, missing


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PEMREG_", "COLUMNS"))}
    clean.update(PEMREG_HOME=str(tmp_path / "home"), PEMREG_PRINCIPAL="alice", COLUMNS="80")
    return clean


def test_version_completion_and_plain_help(env: dict[str, str]) -> None:
    version = _run(env, "--version")
    assert version.returncode == 0
    assert re.fullmatch(rf"pemreg {re.escape(__version__)}( \(git [0-9a-f]{{12}}\))?\n", version.stdout)
    top = _run(env, "--help").stdout
    assert "--install-completion" in top and "--show-completion" in top
    for args in (("lineage", "--help"), ("adapters", "download", "--help")):
        assert "[@N|@alias|@sha256:prefix]" in _run(env, *args).stdout  # not eaten as Rich markup


def test_commands_that_print_no_view_import_no_pydantic(env: dict[str, str]) -> None:
    """A command's help, --version and `runner status` parse arguments and print text: no pydantic (nor
    anything HEAVY) in the process. typer 0.29 imported pydantic to coerce every parameter."""
    for args in (
        ("adapters", "--help"),
        ("adapters", "list", "--help"),
        ("lineage", "--help"),
        ("compose", "--help"),
        ("--version",),
        ("runner", "status"),
    ):
        done, modules = run_and_list_modules(env, *args)
        assert done.returncode == 0, (args, done.stderr)
        assert heavy_in(modules, also=NO_VIEWS) == set(), (args, sorted(heavy_in(modules, also=NO_VIEWS)))


def test_catalog_text_is_printed_as_written(env: dict[str, str], tmp_path: Path) -> None:
    """Descriptions, tags and names are text: what looks like Rich markup or an emoji code is printed as
    is, in a table, in the narrow list layout and in an error (a `v[/x]` once stopped `adapters list`)."""
    assert _run(env, "init").returncode == 0
    text = "v[/x] [red]y[/red] :rocket: [bold]"
    added = _run(env, "adapters", "add", str(make_lora(tmp_path / "a", seed=1)), "--name", "acme/mark-up",
                 "--description", text, "--tag", "note=[/x]:rocket:")  # fmt: skip
    assert added.returncode == 0, added.stderr
    for columns in ("200", "30"):  # a table; a list, one record per row
        listing = _run({**env, "COLUMNS": columns}, "adapters", "list")
        assert listing.returncode == 0, listing.stderr
        assert "[/x]:rocket:" in listing.stdout.replace("\n", "").replace(" ", ""), listing.stdout
    shown = _run({**env, "COLUMNS": "200"}, "adapters", "show", "acme/mark-up")
    assert shown.returncode == 0 and text in shown.stdout, shown.stdout
    missing = _run(env, "adapters", "show", "acme/[red]gone[/red]")
    assert missing.returncode == 1 and "[red]gone[/red]" in missing.stderr, missing.stderr


def test_first_day_session(env: dict[str, str], tmp_path: Path) -> None:
    assert _run(env, "init").returncode == 0
    again = _run(env, "init")
    assert again.returncode == 0 and "pemreg keys create --name NAME --role admin" in again.stdout
    admin = _run(env, "keys", "create", "--name", "me", "--role", "admin")  # locally: no key needed
    assert admin.returncode == 0 and admin.stdout.strip().splitlines()[-1].startswith("pemreg_")

    long_name = "demo/news-sports-summaries-with-a-long-name"
    folder = make_lora(tmp_path / "a", seed=1)
    added = _run(env, "adapters", "add", str(folder), "--name", long_name, "--tag", "team=nlp")
    assert added.returncode == 0, added.stderr
    listing = _run(env, "adapters", "list")  # 80 columns, as in a pipe
    assert long_name in listing.stdout
    assert "…" not in listing.stdout and "…" not in _run(env, "adapters", "show", long_name).stdout

    bare = _run(env, "adapters", "alias", long_name, "prod")
    assert bare.returncode == 1
    assert (
        bare.stderr.strip() == f"error: {long_name} names no version; write {long_name}@N (or pass --latest)"
    )
    chosen = _run(env, "adapters", "alias", long_name, "prod", "--latest")
    assert chosen.returncode == 0 and chosen.stdout.strip() == f"{long_name}@prod -> version 1"
    assert _run(env, "adapters", "alias", f"{long_name}@1", "stable").returncode == 0

    log = _run(env, "audit-log").stdout
    assert "{" not in log and "'" not in log
    assert f"alias_move           {long_name}@prod  alias=prod from_version=null to_version=1" in log
    assert "key_create           key:me  role=admin" in log

    target = tmp_path / "busy"
    target.mkdir()
    (target / "other.txt").write_text("someone else's")
    refused = _run(env, "adapters", "download", f"{long_name}@prod", str(target))
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1 and "--force" in refused.stderr
    assert sorted(p.name for p in target.iterdir()) == ["other.txt"]
    onto_file = _run(env, "adapters", "download", f"{long_name}@prod", str(target / "other.txt"))
    assert (
        onto_file.returncode == 1
        and onto_file.stderr.startswith("error: ")
        and "Traceback" not in onto_file.stderr
    )
    forced = _run(env, "adapters", "download", f"{long_name}@prod", str(target), "--force")
    assert forced.returncode == 0, forced.stderr
    assert (target / "README.md").read_bytes() == (folder / "README.md").read_bytes()
    card = (target / "MODEL_CARD.md").read_text()
    assert f"pem-registry {__version__}" in card and "unversioned" not in card
    fresh = _run(env, "adapters", "download", f"{long_name}@prod", str(tmp_path / "new" / "dir"))
    assert fresh.returncode == 0, fresh.stderr


def test_upload_without_readme_gets_the_generated_card_as_readme(env: dict[str, str], tmp_path: Path) -> None:
    folder = make_lora(tmp_path / "a", seed=2)
    (folder / "README.md").unlink()
    assert _run(env, "init").returncode == 0
    assert _run(env, "adapters", "add", str(folder), "--name", "acme/plain").returncode == 0
    assert _run(env, "adapters", "download", "acme/plain@1", str(tmp_path / "out")).returncode == 0
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["README.md", "adapter_config.json", "adapter_model.safetensors", "provenance.json"]
    assert "base_model_relation: adapter" in (tmp_path / "out" / "README.md").read_text()


def test_model_card_lineage_has_a_method_column() -> None:
    card = render_model_card(
        full_name="acme/mix",
        version=None,
        sha256="ab" * 32,
        base_model="tiny-llama",
        pem_type="lora",
        task=None,
        tags={},
        description=None,
        parents=[
            {"name": "acme/a", "version": 1, "sha256": "cd" * 32, "weight": 0.5},
            {"name": "acme/b", "version": 3, "sha256": "ef" * 32, "weight": -0.3, "operator": "delta_svd"},
        ],
        method="linear",
    )
    assert "| parent | version | method | weight | sha256 |" in card
    assert "| acme/a | 1 | linear | +0.5 | `cdcdcdcdcdcd` |" in card
    assert "| acme/b | 3 | delta_svd | -0.3 | `efefefefefef` |" in card
    assert f"- Registry: pem-registry {__version__}" in card


def test_audit_details_are_key_value() -> None:
    text = format_details(
        {"alias": "prod", "from_version": None, "to": 2, "note": "two words", "w": [0.5, 1]}
    )
    assert text == 'alias=prod from_version=null to=2 note="two words" w=[0.5,1]'


def test_dry_run_reports_linear_cross_terms(env: dict[str, str], tmp_path: Path) -> None:
    assert _run(env, "init").returncode == 0
    for name, seed in (("t/a", 1), ("t/b", 2)):
        assert (
            _run(
                env, "adapters", "add", str(make_lora(tmp_path / name, seed=seed)), "--name", name
            ).returncode
            == 0
        )
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: t/sum\nexpression: '0.5 * t/a + 0.5 * t/b'\n")
    report = json.loads(_run(env, "compose", str(spec), "--dry-run", "--json").stdout)["interference"]
    assert report["cross_term_threshold"] == 0.25
    assert report["linear_cross_term_error"] > 0.25 and report["pairs"][0]["linear_cross_term_error"] > 0.25
    assert any("delta_cat" in w and "delta_svd" in w for w in report["warnings"])
    printed = _run(env, "compose", str(spec), "--dry-run")
    assert "use delta_cat (exact sum) or delta_svd" in " ".join(printed.stderr.split())  # wrapped at 80
    spec.write_text("name: t/sum\nmethod: delta_svd\nexpression: '0.5 * t/a + 0.5 * t/b'\n")
    report = json.loads(_run(env, "compose", str(spec), "--dry-run", "--json").stdout)["interference"]
    assert report["linear_cross_term_error"] > 0.25 and not any("delta_svd" in w for w in report["warnings"])
    quiet = dict(env, PEMREG_LINEAR_CROSS_TERM_THRESHOLD="5")
    spec.write_text("name: t/sum\nexpression: '0.5 * t/a + 0.5 * t/b'\n")
    report = json.loads(_run(quiet, "compose", str(spec), "--dry-run", "--json").stdout)["interference"]
    assert report["cross_term_threshold"] == 5 and not any("delta_cat" in w for w in report["warnings"])
    shutil.rmtree(tmp_path / "t")
