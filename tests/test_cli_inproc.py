"""tests/cli_inproc.py's in-process `pemreg` gives what a real `pemreg` process gives: the same exit
status, stdout and stderr, byte for byte, under pytest's own capture, logging and warning filters."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

from tests.cli_inproc import child, pemreg
from tests.factories import make_lora
from tests.live_server import clean_env

LONG = "demo/news-sports-summaries-with-a-long-name"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("inproc")
    env = clean_env(PEMREG_HOME=str(tmp / "home"), PEMREG_PRINCIPAL="alice", COLUMNS="80")
    assert pemreg(env, "init").returncode == 0
    folder = make_lora(tmp / "a", seed=1)
    assert pemreg(env, "adapters", "add", str(folder), "--name", LONG, "--tag", "team=nlp").returncode == 0
    return env


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),  # the program's name (`python -m api.cli.main`), wrapped at COLUMNS
        ("adapters", "list"),  # a table at 80 columns
        ("adapters", "alias", LONG, "prod"),  # exit 1, one line
        ("adapters", "add"),  # usage: exit 2
    ],
    ids=lambda args: " ".join(args),
)
def test_same_as_the_process(env: dict[str, str], args: tuple[str, ...]) -> None:
    mine, real = pemreg(env, *args), child(env, *args)
    assert (mine.returncode, mine.stdout, mine.stderr) == (real.returncode, real.stdout, real.stderr)
    assert mine.stdout or mine.stderr


def test_environment_width_and_stdin_are_the_commands(env: dict[str, str], tmp_path: Path) -> None:
    """Another COLUMNS wraps differently; nothing of the call stays in this process."""
    before = (dict(os.environ), os.getcwd(), list(warnings.filters))
    wide, narrow = (pemreg({**env, "COLUMNS": c}, "adapters", "list").stdout for c in ("200", "60"))
    assert wide == child({**env, "COLUMNS": "200"}, "adapters", "list").stdout and LONG in wide
    assert narrow == child({**env, "COLUMNS": "60"}, "adapters", "list").stdout and narrow != wide
    relative = pemreg(env, "adapters", "download", f"{LONG}@1", "out", cwd=tmp_path)
    assert relative.returncode == 0 and (tmp_path / "out" / "adapter_config.json").exists()
    assert (dict(os.environ), os.getcwd(), list(warnings.filters)) == before
