"""SIGKILL the process running a `pemreg compose --wait` (the warm local runner) at several points of
its registration, on both backends; then reconcile, gc and compose again, all through the CLI as an
operator would.

The process is stopped at a failpoint (registry/failpoints.py) and killed there, so each case is exact:
before any upload, after the first uploaded file, after every upload but before the catalog commit.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry import service
from registry.service import Registry
from registry.service.compositions import reads as compositions
from registry.service.compositions.status import RunStatus
from tests.adapters_fixtures import copy_of
from tests.cli_inproc import pemreg as cli
from tests.factories import make_ia3, make_lora, save_tiny_base
from tests.failpoint_marks import failpoint_pid
from tests.flow_fixtures import settings_env

SPEC = "name: t/crash\nexpression: '0.5 * t/a + 0.5 * t/b'\n"
STALE_AFTER = 1.0


@pytest.fixture
def crash_env(
    reg: Registry, warm_home: tuple[Path, int], tmp_path: Path
) -> Iterator[tuple[Registry, dict[str, str]]]:
    from flows import local_runner

    home, port = warm_home
    before = frozenset(s.pid for s in local_runner.running(home))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PEMREG_", "PREFECT_"))}
    env.update(
        settings_env(reg),
        PEMREG_HOME=str(home),
        PEMREG_LOCAL_PREFECT_PORT=str(port),
        PEMREG_RUN_STALE_AFTER_SECONDS=str(STALE_AFTER),
        PEMREG_HEARTBEAT_SECONDS="0.3",
        PREFECT_HOME=str(tmp_path / "prefect-client"),
        COLUMNS="200",
    )
    # The same folders for every test: made once per process, copied (tests/adapters_fixtures.py)
    service.add_base_model(reg, "tiny-llama", source=str(copy_of(save_tiny_base, tmp_path / "base")))
    service.register_adapter(reg, copy_of(make_lora, tmp_path / "a", seed=1), "t/a")
    service.register_adapter(reg, copy_of(make_lora, tmp_path / "b", seed=2), "t/b")
    service.register_adapter(reg, copy_of(make_ia3, tmp_path / "i", seed=3), "t/i")
    yield reg, env
    local_runner.stop(home, keep=before)  # the runners this test's commands started


def pemreg(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """`pemreg compose` as a real process: it hands its run to the warm local runner it starts (the
    commands that only read and write the catalog and store run in process: `cli`, tests/cli_inproc.py)."""
    return subprocess.run(
        [sys.executable, "-m", "api.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):  # it may have exited when its runner died
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def store_folders(reg: Registry) -> dict[str, set[str]]:
    """Folder -> file names under adapters/ and merged/, read from the store itself."""
    folders: dict[str, set[str]] = {}
    for kind in ("adapters/", "merged/"):
        for key in reg.store.list_keys(kind):
            folder, _, name = key.rpartition("/")
            folders.setdefault(folder, set()).add(name)
    return folders


def registered_folders(reg: Registry) -> set[str]:
    """Folders of every registered version, from the catalog's artifact URIs (independent of gc)."""
    out = set()
    for adapter in service.list_adapters(reg).items:
        for v in service.show_adapter(reg, adapter.name).versions or []:
            out.add("adapters/" + v.artifact_uri.split("/adapters/", 1)[1])
    return out


def check_consistent(reg: Registry) -> None:
    """No run left pending/running; every file of every registered version is in the store."""
    active = [c for c in compositions.list_compositions(reg, limit=500).items if not c.status.terminal]
    assert active == []
    present = store_folders(reg)
    for adapter in service.list_adapters(reg).items:
        for v in service.show_adapter(reg, adapter.name).versions or []:
            folder = "adapters/" + v.artifact_uri.split("/adapters/", 1)[1]
            assert set(v.files) <= present.get(folder, set()), (folder, v.files)


@pytest.mark.parametrize(
    ("reg", "point", "orphan_files"),
    [
        # Nothing uploaded, no orphan: the same on every backend, run on the embedded default.
        ("sqlite+file", "before_upload", None),
        # The first file landed: a partial upload, where S3 (multipart) differs from a folder.
        ("postgres+s3", "mid_upload", 1),
        # Files, model card and provenance landed; no row: on both stores.
        ("sqlite+file", "before_commit", 4),
        ("postgres+s3", "before_commit", 4),
    ],
    indirect=["reg"],
)
def test_killed_compose_is_reconciled_collected_and_rerun(
    crash_env: tuple[Registry, dict[str, str]], tmp_path: Path, point: str, orphan_files: int | None
) -> None:
    reg, env = crash_env
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    marks = tmp_path / "marks"
    marks.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli.main", "compose", str(spec), "--wait"],
        env={**env, "PEMREG_FAILPOINTS": point, "PEMREG_FAILPOINT_DIR": str(marks)},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "compose.log").open("wb"),  # noqa: SIM115 - the child owns it
    )
    try:
        os.kill(failpoint_pid(marks / point, proc), signal.SIGKILL)  # the process holding the run
    finally:
        kill_group(proc)
    [run] = compositions.list_compositions(reg).items
    assert run.status is RunStatus.RUNNING and run.flow_run_id

    time.sleep(STALE_AFTER + 0.5)  # the killed process beats no more
    rec = cli(env, "compositions", "reconcile", "--json")
    assert rec.returncode == 0, rec.stderr
    [done] = json.loads(rec.stdout)
    assert done["composition_id"] == run.id and done["action"] == "failed"
    lost = compositions.get(reg, run.id[:8])
    assert lost.status is RunStatus.FAILED and (lost.error or "").startswith(
        "worker lost: no heartbeat since"
    ), lost.error
    from flows.runners import probe_for

    probe = probe_for(reg.settings.model_copy(update={"home": Path(env["PEMREG_HOME"])}))
    assert probe is not None and probe.state(run.flow_run_id).type == "CRASHED"
    check_consistent(reg)

    expected = {f: names for f, names in store_folders(reg).items() if f not in registered_folders(reg)}
    if orphan_files is None:
        assert expected == {}
    else:
        [(folder, names)] = expected.items()
        assert folder.startswith("adapters/t/crash/") and len(names) == orphan_files
    listed = cli(env, "gc", "--dry-run", "--grace", "0", "--json")
    assert listed.returncode == 0, listed.stderr
    stored = [o for o in json.loads(listed.stdout) if o["kind"] == "store"]
    assert {o["folder"]: {k.rsplit("/", 1)[1] for k in o["keys"]} for o in stored} == expected
    # the killed run's work folder is a leftover too (its run ended failed): listed, removed below
    work = Path(env["PEMREG_HOME"]) / "cache" / "work" / run.id
    assert work.is_dir()
    assert str(work) in {o["folder"] for o in json.loads(listed.stdout) if o["kind"] == "work"}
    kept = [o for o in json.loads(cli(env, "gc", "--json").stdout) if o["kind"] in ("store", "work")]
    assert kept == []  # the default grace (1 h) keeps them
    removed = cli(env, "gc", "--grace", "0", "--json")
    assert removed.returncode == 0
    assert {o["folder"] for o in json.loads(removed.stdout) if o["kind"] == "store"} == set(expected)
    assert not work.exists()
    assert all(f in registered_folders(reg) for f in store_folders(reg))

    again = pemreg(env, "compose", str(spec), "--wait", "--json")
    assert again.returncode == 0, again.stderr
    view = json.loads(again.stdout)
    assert view["status"] == "succeeded" and view["cache_hit"] is False and view["output"]["version"] == 1
    check_consistent(reg)


# How a failed or rejected run is reported does not depend on the catalog or store: the embedded default.
@pytest.mark.parametrize("reg", ["sqlite+file"], indirect=True)
def test_a_failing_composition_writes_one_line(
    crash_env: tuple[Registry, dict[str, str]], tmp_path: Path
) -> None:
    """A failure inside the flow (its evaluation data is not JSON lines): exit 1, one stderr line with
    the run id; Prefect's logs and traceback go to the log file, or to stderr too with --verbose."""
    reg, env = crash_env
    data = tmp_path / "broken.jsonl"
    data.write_text("this is not json\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"name: t/bad\nexpression: 't/a + t/b'\nevaluate:\n"
        f"  - {{name: ppl, metric: perplexity, dataset: '{data.as_uri()}'}}\n"
    )
    result = pemreg(env, "compose", str(spec), "--wait")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    [run] = compositions.list_compositions(reg).items
    assert run.status is RunStatus.FAILED
    assert lines == [f"error: composition {run.id} failed: dataset: {data.as_uri()} line 1 is not JSON"]
    log = Path(env["PEMREG_HOME"]) / "logs" / "prefect.log"
    assert "line 1 is not JSON" in log.read_text()
    verbose = pemreg(env, "compose", str(spec), "--wait", "--verbose")
    assert verbose.returncode == 1 and len(verbose.stderr.strip().splitlines()) > 1  # Prefect's logs too


def test_an_input_whose_bytes_changed_is_refused_before_any_run(
    crash_env: tuple[Registry, dict[str, str]], tmp_path: Path
) -> None:
    """The pre-run checks read every input (sha256-verified): one line, exit 1, no run recorded."""
    reg, env = crash_env
    service.register_adapter(reg, make_lora(tmp_path / "c", seed=4242), "t/c")  # not in any fetch cache
    [version] = service.show_adapter(reg, "t/c").versions or []
    key = "adapters/" + version.artifact_uri.split("/adapters/", 1)[1] + "/adapter_model.safetensors"
    reg.store.delete(key)
    tampered = tmp_path / "tampered.safetensors"
    tampered.write_bytes(b"not the registered bytes")
    reg.store.put_file(key, tampered)
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: t/bad\nexpression: 't/a + t/c'\n")
    result = pemreg(env, "compose", str(spec), "--wait")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: sha256 mismatch for 'adapters/t/c/"), line
    assert compositions.list_compositions(reg).items == []


@pytest.mark.parametrize("reg", ["sqlite+file"], indirect=True)
def test_a_rejected_composition_writes_one_line(
    crash_env: tuple[Registry, dict[str, str]], tmp_path: Path
) -> None:
    reg, env = crash_env
    data = tmp_path / "ppl.jsonl"
    data.write_text('{"text": "the cat sat on the mat"}\n{"text": "hello world"}\n')
    spec = tmp_path / "gated.yaml"
    spec.write_text(
        f"name: t/gated\nexpression: 't/a + t/b'\nevaluate:\n"
        f"  - {{name: ppl, metric: perplexity, dataset: '{data.as_uri()}'}}\n"
        f"gate:\n  - {{evaluation: ppl, max: 1.0}}\n"
    )
    result = pemreg(env, "compose", str(spec), "--wait")
    [run] = compositions.list_compositions(reg).items
    assert result.returncode == 1 and run.status is RunStatus.REJECTED
    assert result.stderr.strip().splitlines() == [f"error: composition {run.id} rejected: {run.error}"]
