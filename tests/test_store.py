"""Artifact stores: file:// on a temp dir and s3:// against the real SeaweedFS server (no moto: it
accepts any key and tampered presigned URLs, so it could not prove the auth behaviour)."""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry.errors import Conflict, IntegrityError, StoreError
from registry.store import ArtifactNotFound, ArtifactStore, FileStore, adapter_prefix, open_store
from registry.store.base import TMP_DIR
from registry.store.s3 import MIB, S3Store
from tests.s3_service import S3Service

StoreFactory = Callable[..., ArtifactStore]
BOTH = ["file", pytest.param("s3", marks=pytest.mark.s3)]


class Boom(Exception):
    pass


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """make_store(kind, **S3Store options): file stores share one root, S3 stores one fresh prefix."""

    def make(kind: str, **options: Any) -> ArtifactStore:
        if kind == "file":
            return FileStore(tmp_path / "store")
        service: S3Service = request.getfixturevalue("s3_service")
        return S3Store(
            request.getfixturevalue("s3_store_url"),
            endpoint_url=service.endpoint,
            region=service.region,
            access_key=service.access_key,
            secret_key=service.secret_key,
            **options,
        )

    return make


@pytest.fixture(params=BOTH)
def store(request: pytest.FixtureRequest, make_store: StoreFactory) -> ArtifactStore:
    s = make_store(request.param)
    s.ensure_ready()
    return s


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_adapter_prefix() -> None:
    assert adapter_prefix("acme", "math", "ab" * 32) == f"adapters/acme/math/{'ab' * 32}"


def test_open_store_by_scheme(tmp_path: Path) -> None:
    assert isinstance(open_store(tmp_path.as_uri()), FileStore)
    assert open_store(tmp_path.as_uri()).url == tmp_path.as_uri()
    s3 = open_store("s3://bucket/some/prefix/", s3_endpoint_url="http://127.0.0.1:1")
    assert isinstance(s3, S3Store) and s3.url == "s3://bucket/some/prefix"
    with pytest.raises(StoreError, match="unsupported artifact store URL"):
        open_store("gs://bucket/x")
    with pytest.raises(StoreError, match="both access key and secret"):
        open_store("s3://bucket", aws_access_key_id="only-the-key")


def test_round_trip(store: ArtifactStore, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    key = adapter_prefix("acme", "math", sha(data)) + "/adapter_model.safetensors"
    store.put_file(key, write(tmp_path / "src", data), sha256=sha(data))
    store.put_bytes("adapters/acme/math/README.md", b"# card")
    assert store.exists(key) and not store.exists(key + ".nope")
    seen: list[int] = []
    store.get_file(key, tmp_path / "out", sha256=sha(data), progress=seen.append)
    assert (tmp_path / "out").read_bytes() == data and sum(seen) == len(data)
    assert b"".join(store.open_stream("adapters/acme/math/README.md")) == b"# card"
    assert store.list_keys("adapters/acme/") == sorted([key, "adapters/acme/math/README.md"])
    assert store.list_keys("adapters/acme/ma") == store.list_keys("adapters/acme/")
    assert store.list_keys("adapters/other/") == []
    store.delete(key)
    store.delete(key)  # idempotent
    assert store.list_keys("") == ["adapters/acme/math/README.md"]


def test_immutable(store: ArtifactStore, tmp_path: Path) -> None:
    store.put_bytes("k/v", b"one")
    store.put_bytes("k/v", b"one")  # same bytes: no-op
    store.put_file("k/v", write(tmp_path / "same", b"one"))
    with pytest.raises(Conflict, match="immutable"):
        store.put_bytes("k/v", b"two")
    with pytest.raises(Conflict):
        store.put_file("k/v", write(tmp_path / "other", b"two"), sha256=sha(b"two"))
    assert b"".join(store.open_stream("k/v")) == b"one"


def test_put_refuses_bytes_not_matching_given_sha(store: ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(IntegrityError, match="sha256 mismatch"):
        store.put_file("k/v", write(tmp_path / "src", b"data"), sha256=sha(b"other"))
    assert store.list_keys("") == []
    store.put_bytes("k/v", b"othr")  # same size: even the "already stored" path checks the source
    with pytest.raises(IntegrityError, match="sha256 mismatch"):
        store.put_file("k/v", write(tmp_path / "src", b"data"), sha256=sha(b"othr"))


def test_missing_key(store: ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(ArtifactNotFound):
        store.get_file("no/such", tmp_path / "out")
    with pytest.raises(ArtifactNotFound):
        store.open_stream("no/such")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "a\\b", f"{TMP_DIR}/x"])
def test_bad_keys(tmp_path: Path, key: str) -> None:
    with pytest.raises(StoreError, match="invalid artifact key"):
        FileStore(tmp_path).put_bytes(key, b"x")


def tamper(store: ArtifactStore, key: str, data: bytes, service: S3Service | None) -> None:
    """Replace the stored bytes behind the store's back (bit rot, a rogue tool, an attacker)."""
    if isinstance(store, FileStore):
        path = store.root / key
        path.chmod(0o644)
        path.write_bytes(data)
    else:
        assert isinstance(store, S3Store) and service is not None
        service.client().put_object(Bucket=store.bucket, Key=f"{store.prefix}/{key}", Body=data)


def test_integrity_failure_leaves_no_file(
    store: ArtifactStore, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    data = b"good bytes" * 1000
    store.put_bytes("a/model.safetensors", data)
    service = request.getfixturevalue("s3_service") if isinstance(store, S3Store) else None
    tamper(store, "a/model.safetensors", b"evil bytes" * 1000, service)
    out = tmp_path / "dl"
    out.mkdir()
    with pytest.raises(IntegrityError, match="sha256 mismatch"):
        store.get_file("a/model.safetensors", out / "model.safetensors", sha256=sha(data))
    assert list(out.iterdir()) == []  # neither the file nor a temporary part


@pytest.mark.s3
def test_s3_multipart(make_store: StoreFactory, tmp_path: Path) -> None:
    store = make_store("s3", multipart_threshold=5 * MIB, part_size=5 * MIB)
    assert isinstance(store, S3Store)
    store.ensure_ready()
    data = os.urandom(12 * MIB)  # parts of 5 + 5 + 2 MiB (5 MiB is S3's minimum part size)
    seen: list[int] = []
    store.put_file("big/bin", write(tmp_path / "src", data), sha256=sha(data), progress=seen.append)
    assert seen == [5 * MIB, 5 * MIB, 2 * MIB]
    head = store._s3.head_object(Bucket=store.bucket, Key=f"{store.prefix}/big/bin")
    assert head["ETag"].strip('"').endswith("-3")  # really assembled from three parts
    store.get_file("big/bin", tmp_path / "out", sha256=sha(data))
    assert (tmp_path / "out").read_bytes() == data
    store.put_file("big/bin", tmp_path / "src")  # same bytes again: no-op via the stored digest


def s3_leftover_uploads(store: S3Store) -> list[str]:
    uploads = store._s3.list_multipart_uploads(Bucket=store.bucket, Prefix=store.prefix).get("Uploads", [])
    return [u["Key"] for u in uploads]


@pytest.mark.parametrize("kind", BOTH)
def test_interrupted_upload_leaves_nothing(make_store: StoreFactory, tmp_path: Path, kind: str) -> None:
    store = make_store(kind, multipart_threshold=5 * MIB, part_size=5 * MIB)
    store.ensure_ready()
    calls: list[int] = []

    def progress(n: int) -> None:  # the user hits Ctrl+C, or the connection drops, mid-upload
        calls.append(n)
        if len(calls) == 2:
            raise Boom

    src = write(tmp_path / "src", os.urandom(12 * MIB))
    with pytest.raises(Boom):
        store.put_file("adapters/a/b/c/adapter_model.safetensors", src, progress=progress)
    assert not store.exists("adapters/a/b/c/adapter_model.safetensors")
    assert store.list_keys("") == []
    if isinstance(store, S3Store):
        assert s3_leftover_uploads(store) == []
    else:
        assert isinstance(store, FileStore)
        assert [p for p in store.root.rglob("*") if p.is_file()] == []  # temp file removed too
    # A source that changes mid-upload (digest mismatch) is refused before it becomes visible.
    with pytest.raises(IntegrityError):
        store.put_file("x/y", src, sha256=sha(b"something else"))
    assert store.list_keys("") == []
    if isinstance(store, S3Store):
        assert s3_leftover_uploads(store) == []


@pytest.mark.s3
def test_s3_presigned_url(make_store: StoreFactory, tmp_path: Path) -> None:
    store = make_store("s3")
    store.ensure_ready()
    store.put_bytes("p/file", b"presigned payload")
    url = store.presigned_url("p/file", expires=60)
    assert url is not None
    assert httpx.get(url).content == b"presigned payload"
    sig = url.index("X-Amz-Signature=") + len("X-Amz-Signature=")
    tampered = url[:sig] + ("0" if url[sig] != "0" else "1") + url[sig + 1 :]
    assert httpx.get(tampered).status_code == 403
    other_key = url.replace("p/file", "p/filf")
    assert httpx.get(other_key).status_code == 403
    assert FileStore(tmp_path).presigned_url("p/file") is None


def s3_store_as(service: S3Service, url: str, access_key: str, secret_key: str) -> S3Store:
    return S3Store(
        url,
        endpoint_url=service.endpoint,
        region=service.region,
        access_key=access_key,
        secret_key=secret_key,
    )


@pytest.mark.s3
@pytest.mark.parametrize(
    ("who", "code"), [("wrong-secret", "SignatureDoesNotMatch"), ("unknown-key", "InvalidAccessKeyId")]
)
def test_s3_bad_credentials(s3_service: S3Service, s3_store_url: str, who: str, code: str) -> None:
    access = s3_service.access_key if who == "wrong-secret" else "NOSUCHKEY123"
    store = s3_store_as(s3_service, s3_store_url, access, "not-the-secret")
    calls = (store.ping, store.ensure_ready, lambda: store.put_bytes("k", b"x"), lambda: store.exists("k"))
    for call in calls:
        with pytest.raises(StoreError) as info:
            call()
        message = str(info.value)
        assert "S3 access denied for bucket 'pemreg-test'" in message and s3_service.endpoint in message
        assert code in message or "403" in message  # HEAD answers carry no error body, only the status
        assert "\n" not in message and "PEMREG_S3_ACCESS_KEY_ID" in message


@pytest.mark.s3
def test_s3_read_only_identity(s3_service: S3Service, s3_store_url: str, make_store: StoreFactory) -> None:
    if not s3_service.ro_access_key or not s3_service.ro_secret_key:
        pytest.skip("the external S3 server gave no read-only identity")
    admin = make_store("s3")
    admin.ensure_ready()
    admin.put_bytes("shared/file", b"readable")
    reader = s3_store_as(s3_service, s3_store_url, s3_service.ro_access_key, s3_service.ro_secret_key)
    reader.ping()
    assert b"".join(reader.open_stream("shared/file")) == b"readable"
    with pytest.raises(StoreError, match="S3 access denied .*AccessDenied"):
        reader.put_bytes("shared/new", b"nope")
    assert admin.list_keys("") == ["shared/file"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_s3_unreachable_fails_fast() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    store = S3Store("s3://bucket/p", endpoint_url=endpoint, access_key="k", secret_key="s")
    started = time.monotonic()
    with pytest.raises(StoreError, match=f"S3 endpoint {endpoint} unreachable"):
        store.ping()
    assert time.monotonic() - started < 5


@pytest.mark.s3
def test_s3_ensure_ready_creates_bucket(s3_service: S3Service) -> None:
    bucket = f"pemreg-new-{os.urandom(4).hex()}"
    store = s3_store_as(s3_service, f"s3://{bucket}/root", s3_service.access_key, s3_service.secret_key)
    with pytest.raises(StoreError, match=f"S3 bucket '{bucket}' does not exist"):
        store.ping()
    store.ensure_ready()
    store.ensure_ready()  # idempotent
    store.ping()
    client = s3_service.client()
    client.delete_bucket(Bucket=bucket)


def test_file_store_ensure_ready_and_layout(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "new" / "root")
    with pytest.raises(StoreError, match="does not exist"):
        store.ping()
    store.ensure_ready()
    store.ping()
    store.put_bytes("adapters/a/b/f", b"1")
    assert store.list_keys("") == ["adapters/a/b/f"]  # the temp dir never shows up as keys
    assert not os.access(store.root / "adapters/a/b/f", os.W_OK) or os.geteuid() == 0
    store.delete("adapters/a/b/f")
    assert sorted(p.name for p in store.root.iterdir()) == [TMP_DIR]  # empty folders pruned


@pytest.mark.parametrize("kind", BOTH)
def test_concurrent_writers_of_one_key(make_store: StoreFactory, kind: str) -> None:
    """Conditional creates: of racing writers one wins; equal bytes are fine, other bytes Conflict."""
    from concurrent.futures import ThreadPoolExecutor

    store = make_store(kind)
    store.ensure_ready()
    payloads = [b"same"] * 4 + [b"different"] * 4

    def put(data: bytes) -> str:
        try:
            store.put_bytes("race/key", data)
            return "ok"
        except Conflict:
            return "conflict"

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(put, payloads))
    winner = b"".join(store.open_stream("race/key"))
    assert [r for d, r in zip(payloads, results, strict=True) if d == winner] == ["ok"] * 4
    assert [r for d, r in zip(payloads, results, strict=True) if d != winner] == ["conflict"] * 4


@pytest.mark.s3
def test_s3_object_without_digest_metadata(make_store: StoreFactory, s3_service: S3Service) -> None:
    """Objects written by other tools carry no sha256 metadata: equality is decided by hashing."""
    store = make_store("s3")
    assert isinstance(store, S3Store)
    store.ensure_ready()
    s3_service.client().put_object(Bucket=store.bucket, Key=f"{store.prefix}/ext/file", Body=b"external")
    store.put_bytes("ext/file", b"external")
    with pytest.raises(Conflict):
        store.put_bytes("ext/file", b"externaL")
