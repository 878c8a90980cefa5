"""A real `pemreg serve` subprocess on PostgreSQL + SeaweedFS, with one API key per role.

Module-scoped (start ~2-4 s): tests sharing it use distinct adapter names."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from registry.catalog.migrate import upgrade
from registry.service import Registry
from registry.service.admin.keys import ROLES, create_key
from registry.settings import Settings
from tests.catalog_helpers import register_test_bases
from tests.pg_service import truncate_all
from tests.s3_service import S3Service

STARTUP_SECONDS = 60


@dataclass
class Server:
    url: str
    keys: dict[str, str]  # role -> secret
    reg: Registry  # the same catalog and store, for test setup and for checks behind the API
    server_env: dict[str, str]  # what the server process got (database URL, S3 credentials)


def server_pid(url: str) -> int:
    """The pid of the `pemreg serve` process listening at `url` (a subprocess of this test run)."""
    port = url.rsplit(":", 1)[1].encode()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"serve" in cmd and port in cmd:
                return int(proc.name)
    raise AssertionError(f"no pemreg serve process at {url}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout`."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any PEMREG_* / AWS_* setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PEMREG_", "AWS_"))}
    return {**env, **extra}


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"pemreg serve exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"pemreg serve not ready after {STARTUP_SECONDS} s: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def live_server(
    pg_url: str, s3_service: S3Service, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    # The remote-mode tour names base models by hub id: this operator allows hub sources.
    yield from run_server(
        pg_url, s3_service, tmp_path_factory.mktemp("server"), PEMREG_ALLOW_HUB_SOURCES="true"
    )


def run_server(
    pg_url: str,
    s3_service: S3Service,
    tmp: Path,
    home: Path | None = None,
    test_bases: bool = True,
    **env_extra: str,
) -> Iterator[Server]:
    """`home`: the server's PEMREG_HOME (e.g. one whose warm Prefect server runs); `test_bases`: register
    the synthetic adapters' base models (REST registers none on the way); env_extra: PEMREG_*."""
    home = home or tmp / "home"
    client = s3_service.client()
    try:
        client.head_bucket(Bucket=s3_service.bucket)
    except client.exceptions.ClientError:
        client.create_bucket(Bucket=s3_service.bucket)
    store_url = f"s3://{s3_service.bucket}/{tmp.name}"
    settings: Settings = s3_service.settings(
        home=home, database_url=pg_url, store_url=store_url, principal="setup"
    )
    upgrade(pg_url)
    reg = Registry(settings)
    reg.store.ensure_ready()
    keys = {role: create_key(reg, f"{role}-key", role) for role in ROLES}
    if test_bases:
        register_test_bases(reg)
    port = free_port()
    env = clean_env(
        **s3_service.settings_env(store_url), PEMREG_DATABASE_URL=pg_url, PEMREG_HOME=str(home), **env_extra
    )
    log = tmp / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "api.cli.main", "serve", "--port", str(port), "--log-level", "warning"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, log)
        yield Server(url=url, keys=keys, reg=reg, server_env=env)
    finally:
        stop(proc)
        truncate_all(pg_url)
