"""The warm local runner's client side (flows/local_runner.py) and the runner's path rule, without a
runner process: tests/test_cli_compose.py drives a real one."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.cli.compose import LIST_MAX
from flows import local_runner
from flows.runner_process import absolute_paths
from registry.service.compositions.reads import MAX_LIMIT
from registry.spec import load_spec


def test_compose_commands_take_the_services_page_limit() -> None:
    assert LIST_MAX == MAX_LIMIT


def test_a_runner_serves_one_environment() -> None:
    env = {"PEMREG_HOME": "/h", "PEMREG_DATABASE_URL": "sqlite:////h/a.db", "TERM": "xterm", "HOME": "/root"}
    same = local_runner.fingerprint(env)
    assert local_runner.fingerprint({**env, "TERM": "dumb", "COLUMNS": "80"}) == same  # the terminal's own
    assert local_runner.fingerprint({**env, "PEMREG_URL": "http://x"}) == same  # remote mode never gets here
    for key, value in (
        ("PEMREG_DATABASE_URL", "sqlite:////h/b.db"),
        ("PEMREG_PRINCIPAL", "alice"),
        ("PREFECT_API_URL", "http://127.0.0.1:4200/api"),
        ("AWS_PROFILE", "other"),
        ("HF_HUB_OFFLINE", "1"),
        ("OMP_NUM_THREADS", "1"),
        ("PYTHONPATH", "/elsewhere"),
        ("https_proxy", "http://proxy:3128"),
    ):
        assert local_runner.fingerprint({**env, key: value}) != same, key


def test_socket_paths_fit_the_kernels_limit(tmp_path: Path) -> None:
    short = local_runner.socket_path(Path("/tmp/h"), "0123456789abcdef")
    assert short == "/tmp/h/runner/0123456789abcdef/sock"
    deep = tmp_path / ("d" * 120)
    path = local_runner.socket_path(deep, "0123456789abcdef")
    assert len(path) <= local_runner.SOCKET_PATH_MAX and Path(path).parent.stat().st_mode & 0o077 == 0
    assert local_runner.socket_path(deep, "fedcba9876543210") != path  # one socket per environment


@pytest.mark.parametrize(
    ("dataset", "expected"),
    [
        ("data/ppl.jsonl", "/work/here/data/ppl.jsonl"),
        ("/abs/ppl.jsonl", "/abs/ppl.jsonl"),
        ("~/ppl.jsonl", "~/ppl.jsonl"),
        ("file:///abs/ppl.jsonl", "file:///abs/ppl.jsonl"),
        ("s3://bucket/ppl.jsonl", "s3://bucket/ppl.jsonl"),
    ],
)
def test_relative_dataset_paths_follow_the_commands_folder(dataset: str, expected: str) -> None:
    spec = load_spec(
        f"name: t/x\nexpression: 't/a + t/b'\n"
        f"evaluate:\n  - {{name: ppl, metric: perplexity, dataset: '{dataset}'}}\n"
    )
    assert absolute_paths(spec, "/work/here").evaluate[0].dataset == expected


def test_a_calibration_naming_an_evaluation_is_kept() -> None:
    text = (
        "name: t/x\nmethod: core_merge\nrank: 4\ndensity: 0.5\ncore_criterion: importance\n"
        "expression: 't/a + t/b'\n"
        "evaluate:\n  - {name: ppl, metric: perplexity, dataset: d.jsonl}\n"
    )
    named = absolute_paths(load_spec(text + "calibration: ppl\n"), "/w")
    assert named.calibration == "ppl" and named.evaluate[0].dataset == "/w/d.jsonl"
    assert absolute_paths(load_spec(text + "calibration: c.jsonl\n"), "/w").calibration == "/w/c.jsonl"


def test_a_warm_process_rehashes_a_cached_input_only_when_it_changed(tmp_path: Path) -> None:
    import os
    import time

    from registry.hashing import sha256_bytes, sha256_unchanged

    path = tmp_path / "adapter_model.safetensors"
    path.write_bytes(b"a" * 1000)
    assert sha256_unchanged(path) == sha256_bytes(b"a" * 1000)
    before = path.stat()
    time.sleep(0.05)  # file times move with the kernel's coarse clock (a few ms a tick)
    path.write_bytes(b"b" * 1000)  # same size; the old mtime put back: only ctime tells
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert sha256_unchanged(path) == sha256_bytes(b"b" * 1000)
    path.unlink()
    path.write_bytes(b"c" * 1000)  # a new file at the same path
    assert sha256_unchanged(path) == sha256_bytes(b"c" * 1000)
