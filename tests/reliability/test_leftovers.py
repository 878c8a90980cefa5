"""No leftovers after SIGKILL: what a killed `pemreg serve` (or run) leaves outside the catalog is found
and removed by `pemreg gc` and by the next start of the server, once older than the grace period.

The campaign measured: SIGKILLs mid-upload left 1.17 GB of `pemreg-upload-*` folders, a killed run
391 MB in `cache/work/<id>`, and an incomplete S3 multipart upload stayed; restart, `reconcile` and
`gc` removed none of them. Real processes, PostgreSQL, SeaweedFS."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.live_server import Server, run_server, server_pid
from tests.s3_service import S3Service

pytestmark = [pytest.mark.postgres, pytest.mark.s3]
MB = 1024 * 1024


def _slow_upload(server: Server, release: threading.Event) -> None:
    """A multipart upload that sends 8 MB of weights, then waits (the server is killed meanwhile)."""
    boundary = "leftoverboundary"

    def body() -> Iterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\nt/killed\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="weights"; filename="w"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        for _ in range(8):
            yield b"\0" * MB
        release.wait(120)
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {
        "Authorization": f"Bearer {server.keys['writer']}",
        "content-type": f"multipart/form-data; boundary={boundary}",
    }
    with contextlib.suppress(httpx.HTTPError):  # the server dies under it
        httpx.post(f"{server.url}/v1/adapters", content=body(), headers=headers, timeout=120)


def _incomplete_upload(s3_service: S3Service, store_url: str) -> tuple[str, str]:
    bucket, prefix = store_url.removeprefix("s3://").split("/", 1)
    key = f"{prefix}/adapters/t/killed/{'0' * 64}/adapter_model.safetensors"
    client = s3_service.client()
    upload = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    client.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"\0" * (5 * MB))
    return bucket, key


def _open_uploads(s3_service: S3Service, store_url: str) -> list[dict[str, Any]]:
    bucket, prefix = store_url.removeprefix("s3://").split("/", 1)
    return list(
        s3_service.client().list_multipart_uploads(Bucket=bucket, Prefix=prefix + "/").get("Uploads", [])
    )


def test_sigkill_mid_upload_then_gc_leaves_nothing(
    pg_url: str, s3_service: S3Service, tmp_path: Path
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    (tmp_path / "s1").mkdir()
    servers = run_server(pg_url, s3_service, tmp_path / "s1", TMPDIR=str(scratch))
    server = next(servers)
    store_url = server.reg.settings.resolved_artifact_store
    release = threading.Event()
    try:
        uploader = threading.Thread(target=_slow_upload, args=(server, release), daemon=True)
        uploader.start()
        deadline = time.monotonic() + 60
        while not any(p.stat().st_size >= 4 * MB for p in scratch.glob("pemreg-upload-*/*")):
            assert time.monotonic() < deadline, list(scratch.iterdir())
            time.sleep(0.1)
        os.kill(server_pid(server.url), signal.SIGKILL)
        release.set()
        uploader.join(timeout=60)
        _incomplete_upload(s3_service, store_url)  # as a put killed between its parts
        left = [p for p in scratch.iterdir() if p.name.startswith("pemreg-upload-")]
        assert len(left) == 1 and _open_uploads(s3_service, store_url)

        env = {**server.server_env, "TMPDIR": str(scratch)}
        gc = [sys.executable, "-m", "api.cli.main", "gc", "--json"]
        kept = subprocess.run(gc, env=env, capture_output=True, text=True, timeout=120)
        assert kept.returncode == 0 and json.loads(kept.stdout) == [], kept.stdout  # within the grace period
        found = subprocess.run([*gc, "--grace", "0"], env=env, capture_output=True, text=True, timeout=120)
        assert found.returncode == 0, found.stderr
        kinds = sorted(o["kind"] for o in json.loads(found.stdout))
        print(f"after SIGKILL: gc found {kinds}")
        assert kinds == ["upload", "upload-parts"], found.stdout
        assert list(scratch.iterdir()) == [] and _open_uploads(s3_service, store_url) == []
    finally:
        release.set()
        servers.close()


def test_the_next_start_removes_what_dead_processes_left(
    pg_url: str, s3_service: S3Service, tmp_path: Path
) -> None:
    scratch = tmp_path / "tmp"
    home = tmp_path / "home"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(dead.stdout)
    hour_ago = time.time() - 3600
    leftovers = [
        scratch / f"pemreg-upload-{dead_pid}-abcd",  # a killed upload
        scratch / "pemreg-ingest-legacyname",  # named by an older version (no pid)
        home / "cache" / "work" / str(uuid.uuid4()),  # a killed run's work folder (no active run)
        home / "cache" / "adapters" / ".fetch-x1",  # a half-downloaded input
    ]
    for folder in leftovers:
        folder.mkdir(parents=True)
        (folder / "data.bin").write_bytes(b"\0" * MB)
        os.utime(folder / "data.bin", (hour_ago, hour_ago))
        os.utime(folder, (hour_ago, hour_ago))
    live = scratch / f"pemreg-upload-{os.getpid()}-live"  # this (live) process's: kept
    live.mkdir()
    os.utime(live, (hour_ago, hour_ago))
    (tmp_path / "s2").mkdir()
    servers = run_server(
        pg_url, s3_service, tmp_path / "s2", home=home, TMPDIR=str(scratch), PEMREG_GC_GRACE_SECONDS="600"
    )
    next(servers)
    try:
        assert [f for f in leftovers if f.exists()] == []
        assert live.exists()
    finally:
        servers.close()
