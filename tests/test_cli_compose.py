"""`pemreg compose` as a user runs it on the embedded default: the spec goes to the warm local runner
(started by the first command, shared by the module's tests: one environment), which reports to the
session's warm local Prefect server."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry import service
from registry.service import Registry
from registry.service.compositions import reads as compositions
from registry.settings import Settings
from tests.cli_imports import NO_VIEWS, heavy_in, run_and_list_modules
from tests.factories import make_ia3, make_lora, save_tiny_base


@pytest.fixture(scope="module")
def cli(
    warm_home: tuple[Path, int], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Registry, dict[str, str]]]:
    from flows import local_runner

    home, port = warm_home
    tmp_path = tmp_path_factory.mktemp("cli-compose")
    reg = Registry(
        Settings(
            home=home,
            database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
            artifact_store=(tmp_path / "store").as_uri(),
            principal="researcher",
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PEMREG_", "PREFECT_"))}
    env.update(
        PEMREG_HOME=str(home),
        PEMREG_DATABASE_URL=reg.settings.resolved_database_url,
        PEMREG_ARTIFACT_STORE=reg.settings.resolved_artifact_store,
        PEMREG_PRINCIPAL="researcher",
        PEMREG_LOCAL_PREFECT_PORT=str(port),
        PREFECT_HOME=str(tmp_path / "prefect-client"),
        COLUMNS="200",
    )
    assert (
        subprocess.run(
            [sys.executable, "-m", "api.cli.main", "init"], env=env, capture_output=True
        ).returncode
        == 0
    )
    service.add_base_model(reg, "tiny-llama", source=str(save_tiny_base(tmp_path / "base")))
    service.register_adapter(reg, make_lora(tmp_path / "a", seed=1), "t/a")
    service.register_adapter(reg, make_lora(tmp_path / "b", seed=2), "t/b")
    service.register_adapter(reg, make_ia3(tmp_path / "i", seed=3), "t/i")
    yield reg, env
    local_runner.stop(home)


def _compose(env: dict[str, str], spec: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli.main", "compose", str(spec), *flags],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_dry_run_then_compose_then_cache_hit(cli: tuple[Registry, dict[str, str]], tmp_path: Path) -> None:
    from flows import local_runner

    reg, env = cli
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: t/sum\nexpression: 't/a + t/b'\n")
    dry = _compose(env, spec, "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    report = json.loads(dry.stdout)
    assert [(i["name"], i["version"], i["weight"]) for i in report["inputs"]] == [
        ("t/a", 1, 1.0),
        ("t/b", 1, 1.0),
    ]
    assert (
        len(report["interference"]["pairs"]) == 1
        and 0 <= report["interference"]["pairs"][0]["rms_cosine"] <= 1
    )
    assert compositions.list_compositions(reg).items == []  # a dry run composes nothing
    assert report["cache_key"] and "composition_id" not in report

    first = _compose(env, spec, "--wait")
    assert first.returncode == 0, first.stderr
    assert "succeeded: t/sum@1" in first.stdout
    # the runner of this environment, started by the dry run and still warm (other tests of this module
    # may leave runners of other environments warm in the same home)
    home, fp = Path(env["PEMREG_HOME"]), local_runner.fingerprint(env)
    [runner] = [s for s in local_runner.running(home) if s.fingerprint == fp]
    again, modules = run_and_list_modules(env, "compose", str(spec), "--json")
    view = json.loads(again.stdout)
    assert view["cache_hit"] is True and view["output"]["version"] == 1
    # The command only handed its spec over: no engine, orchestrator, catalog, settings or pydantic imports.
    assert heavy_in(modules, also=NO_VIEWS) == set(), sorted(heavy_in(modules, also=NO_VIEWS))
    assert [s for s in local_runner.running(home) if s.fingerprint == fp] == [runner]  # one served all

    listing = subprocess.run(
        [sys.executable, "-m", "api.cli.main", "compositions", "list", "--json"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert [c["status"] for c in json.loads(listing.stdout)["items"]] == ["succeeded", "succeeded"]
    shown = subprocess.run(
        [sys.executable, "-m", "api.cli.main", "compositions", "show", view["id"][:8]],  # a prefix
        env=env,
        capture_output=True,
        text=True,
    )
    written_and_applied = r"│ t/a@1\s*│ t/a\S*\s*│ \+1\s*│ \+1\s*│"
    assert re.search(written_and_applied, shown.stdout), shown.stdout
    assert view["id"] in shown.stdout


@pytest.mark.parametrize(
    ("spec_text", "needle"),
    [
        ("name: t/x\nexpression: 't/a + t/i'\n", "PEM types"),
        ("name: t/x\nexpression: 't/a +'\n", "expression"),
        ("name: t/x\nmethod: ties\nexpression: 't/a + t/b'\n", "density"),
        ("name: t/x\nexpression: 't/missing + t/b'\n", "t/missing"),
        ("name: T/X\nexpression: 't/a'\n", "name"),
        # Each rule's measured escape (tests/test_rules_corpus.py has the corpora): refused up front.
        ("name: t/x\nexpression: 't/a'\noutput: {aliases: [1abc]}\n", "output.aliases[0]"),
        ("name: t/x\nexpression: 't/a@sha256:ab'\n", "6-64 hex digits"),
        ("name: t/x\nexpression: 't/a'\nschedule: '99 99 99 99 99'\n", "schedule"),
        ("name: t/x\nexpression: '1e10000000 * t/a'\n", "exponent"),
        ("name: t/x\nexpression: '" + "(" * 500 + "t/a" + ")" * 500 + "'\n", "nest"),
    ],
)
def test_bad_specs_fail_with_one_line(
    cli: tuple[Registry, dict[str, str]], tmp_path: Path, spec_text: str, needle: str
) -> None:
    reg, env = cli
    spec = tmp_path / "bad.yaml"
    spec.write_text(spec_text)
    result = _compose(env, spec)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.stderr
    assert "t/x" not in {a.name for a in service.list_adapters(reg).items}
    assert all(c.name != "t/x" for c in compositions.list_compositions(reg).items)  # refused before a row


def test_progress_streams_with_verbose_and_relative_datasets_follow_the_command(
    cli: tuple[Registry, dict[str, str]], tmp_path: Path
) -> None:
    """The runner runs in its own folder: a dataset named relative to the command's folder is made
    absolute (and recorded so); --verbose streams the run's Prefect log lines as they happen."""
    reg, env = cli
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "ppl.jsonl").write_text(
        "\n".join(json.dumps({"text": t}) for t in ("the cat sat", "hello world", "a b c d"))
    )
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: t/evaluated\nexpression: '0.5 * t/a + 0.5 * t/b'\n"
        "evaluate:\n  - {name: ppl, metric: perplexity, dataset: data/ppl.jsonl}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "api.cli.main", "compose", "spec.yaml", "--wait", "--verbose", "--json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    view = json.loads(done.stdout)
    assert view["status"] == "succeeded" and view["metrics"]["ppl"] > 1
    assert view["spec"]["evaluate"][0]["dataset"] == str(tmp_path / "data" / "ppl.jsonl")
    finished = [line for line in done.stderr.splitlines() if "Finished in state Completed" in line]
    assert any(line.startswith("INFO compose") for line in finished), done.stderr  # the compose task
    assert any("evaluate" in line for line in finished), done.stderr


def test_local_server_moves_off_a_taken_port(warm_home: tuple[Path, int]) -> None:
    """warm_home asked for a port another listener holds: its server runs on a free one, recorded."""
    from flows import local_server

    home, taken = warm_home
    state = local_server.status(home)
    assert state is not None and f":{taken}/" not in state["url"]
    with socket.create_connection(("127.0.0.1", taken), timeout=5):
        pass  # the other listener still holds the port
