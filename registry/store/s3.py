"""s3:// store (AWS S3, MinIO, SeaweedFS) on boto3.

Immutability without a lock: every create is conditional (`If-None-Match: *` on PutObject and on
CompleteMultipartUpload), so of two concurrent writers one wins and the other compares bytes.
A multipart upload only becomes visible when completed; any failure (including the caller's
progress callback raising or Ctrl+C) aborts it so no parts linger.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any, BinaryIO
from urllib.parse import urlparse

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from ..errors import Conflict, StoreError
from .base import (
    CHUNK,
    ArtifactNotFound,
    ArtifactStore,
    IncompleteUpload,
    Progress,
    StoredObject,
    check_key,
    check_sha256,
)

MIB = 1024 * 1024
MIN_PART = 5 * MIB  # S3 (and SeaweedFS) refuse non-final parts below 5 MiB
MAX_PARTS = 10_000
_AUTH_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccessDenied",
    "Forbidden",
    "403",
    "InvalidToken",
    "ExpiredToken",
    "InvalidClientTokenId",
    "AllAccessDisabled",
    "AccountProblem",
}
_MISSING_CODES = {"NoSuchKey", "NotFound", "404"}
_RACE_CODES = {"PreconditionFailed", "ConditionalRequestConflict"}
_CRED_HINT = "check PEMREG_S3_ACCESS_KEY_ID / PEMREG_S3_SECRET_ACCESS_KEY or the AWS credential chain"


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "?"))


class S3Store(ArtifactStore):
    def __init__(
        self,
        url: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        multipart_threshold: int = 8 * MIB,
        part_size: int = 8 * MIB,
        connect_timeout: float = 3,
        read_timeout: float = 60,
        max_attempts: int = 2,
    ) -> None:
        parsed = urlparse(url)
        self.bucket = parsed.netloc
        if parsed.scheme != "s3" or not self.bucket:
            raise StoreError(f"invalid S3 store URL {url!r}: use s3://bucket[/prefix]")
        self.prefix = parsed.path.strip("/")
        self.url = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        if (access_key is None) != (secret_key is None):
            raise StoreError(f"S3 credentials incomplete: give both access key and secret key ({_CRED_HINT})")
        session = boto3.session.Session(
            aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name=region
        )
        region = region or session.region_name or "us-east-1"
        self.region = region
        self.endpoint = endpoint_url or f"AWS S3 ({region})"
        self.multipart_threshold = multipart_threshold
        self.part_size = max(part_size, MIN_PART)
        config = Config(
            region_name=region,
            signature_version="s3v4",
            # Fail in seconds, not minutes, when the endpoint is down (defaults: 60 s x 5 attempts).
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": max_attempts, "mode": "standard"},
            # One client serves every request thread of `pemreg serve` (and a worker's task threads).
            max_pool_connections=64,
            # Custom endpoints (SeaweedFS, MinIO) rarely have wildcard DNS for virtual-host buckets.
            s3={"addressing_style": "path" if endpoint_url else "auto"},
            # We verify sha256 ourselves; botocore's default CRC trailers trip some S3-compatibles.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self._s3: Any = session.client("s3", endpoint_url=endpoint_url, config=config)

    # -- helpers ---------------------------------------------------------------------------------
    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _error(self, exc: Exception, action: str) -> StoreError:
        """One line a user can act on, instead of a botocore traceback."""
        at = f"for bucket '{self.bucket}' at {self.endpoint}"
        if isinstance(exc, ClientError):
            code = _code(exc)
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in _AUTH_CODES or status == 403:
                return StoreError(f"S3 access denied {at}: {code} while {action} ({_CRED_HINT})")
            if code == "NoSuchBucket":
                return StoreError(
                    f"S3 bucket '{self.bucket}' does not exist at {self.endpoint} (run `pemreg init`)"
                )
            if code in _MISSING_CODES:
                return ArtifactNotFound(f"{action}: not found in {self.url} at {self.endpoint}")
            message = exc.response.get("Error", {}).get("Message", "")
            return StoreError(f"S3 error {at} while {action}: {code} {message}".rstrip())
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return StoreError(f"no S3 credentials found for {self.endpoint} ({_CRED_HINT})")
        if isinstance(exc, EndpointConnectionError | ConnectTimeoutError | ConnectionClosedError):
            return StoreError(f"S3 endpoint {self.endpoint} unreachable while {action}")
        if isinstance(exc, ReadTimeoutError):
            return StoreError(f"S3 endpoint {self.endpoint} timed out while {action}")
        return StoreError(f"S3 error {at} while {action}: {exc}")

    @contextmanager
    def _translate(self, action: str) -> Iterator[None]:
        try:
            yield
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, action) from exc

    # -- interface -------------------------------------------------------------------------------
    def ping(self) -> None:
        with self._translate("listing"):
            self._s3.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix, MaxKeys=1)

    def ensure_ready(self) -> None:
        try:
            self.ping()
            return
        except StoreError as exc:
            cause = exc.__cause__
            if not (isinstance(cause, ClientError) and _code(cause) == "NoSuchBucket"):
                raise
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if self.region != "us-east-1":  # AWS rejects an explicit us-east-1 constraint
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            self._s3.create_bucket(**kwargs)
        except ClientError as exc:
            if _code(exc) not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise self._error(exc, "creating the bucket") from exc
        except BotoCoreError as exc:
            raise self._error(exc, "creating the bucket") from exc

    def exists(self, key: str) -> bool:
        try:
            self._s3.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as exc:
            if _code(exc) in _MISSING_CODES:
                return False
            raise self._error(exc, f"checking {key!r}") from exc
        except BotoCoreError as exc:
            raise self._error(exc, f"checking {key!r}") from exc

    def put_bytes(self, key: str, data: bytes) -> None:
        digest = hashlib.sha256(data).hexdigest()
        if not self._exists_same(key, digest, len(data)):
            self._put_small(key, data, digest)

    def put_file(
        self,
        key: str,
        src_path: str | os.PathLike[str],
        *,
        sha256: str | None = None,
        progress: Progress | None = None,
    ) -> None:
        try:
            size = os.path.getsize(src_path)
            src = open(src_path, "rb")  # noqa: SIM115 - closed below, also on error
        except OSError as exc:
            raise StoreError(f"cannot read {src_path}: {exc.strerror}") from exc
        with src:
            given = sha256 is not None
            if sha256 is None:  # the digest goes into object metadata, so it is needed up front
                sha256 = _hash(src)
                src.seek(0)
            sha256 = sha256.lower()
            if self._exists_same(key, sha256, size):
                if given:  # a no-op must not vouch for a source that differs from its claimed digest
                    check_sha256(key, sha256, _hash(src), str(src_path))
                return
            if size <= self.multipart_threshold:
                data = src.read()
                check_sha256(key, sha256, hashlib.sha256(data).hexdigest(), str(src_path))
                self._put_small(key, data, sha256)
                if progress:
                    progress(len(data))
            else:
                self._put_multipart(key, src, size, sha256, progress, str(src_path))

    def _exists_same(self, key: str, sha256: str, size: int) -> bool:
        """True if `key` holds these bytes, False if absent; Conflict if it holds others."""
        try:
            head = self._s3.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _code(exc) in _MISSING_CODES:
                return False
            raise self._error(exc, f"checking {key!r}") from exc
        except BotoCoreError as exc:
            raise self._error(exc, f"checking {key!r}") from exc
        stored = head.get("Metadata", {}).get("sha256")
        if head.get("ContentLength") == size and stored is None:  # written by another tool: hash it
            stored = _hash_chunks(self.open_stream(key))
        if stored != sha256 or head.get("ContentLength") != size:
            raise Conflict(f"artifact {key!r} already exists in {self.url} with other content (immutable)")
        return True

    def _put_small(self, key: str, data: bytes, sha256: str) -> None:
        try:
            self._s3.put_object(
                Bucket=self.bucket,
                Key=self._key(key),
                Body=data,
                Metadata={"sha256": sha256},
                IfNoneMatch="*",
            )
        except ClientError as exc:
            if _code(exc) not in _RACE_CODES:
                raise self._error(exc, f"uploading {key!r}") from exc
            self._exists_same(key, sha256, len(data))  # lost a race: fine if the winner wrote our bytes
        except BotoCoreError as exc:
            raise self._error(exc, f"uploading {key!r}") from exc

    def _put_multipart(
        self, key: str, src: BinaryIO, size: int, sha256: str, progress: Progress | None, where: str
    ) -> None:
        full = self._key(key)
        part_size = max(self.part_size, -(-size // MAX_PARTS))
        with self._translate(f"starting upload of {key!r}"):
            upload_id = self._s3.create_multipart_upload(
                Bucket=self.bucket, Key=full, Metadata={"sha256": sha256}
            )["UploadId"]
        try:
            parts: list[dict[str, Any]] = []
            digest = hashlib.sha256()
            while chunk := src.read(part_size):
                digest.update(chunk)
                number = len(parts) + 1
                with self._translate(f"uploading part {number} of {key!r}"):
                    etag = self._s3.upload_part(
                        Bucket=self.bucket, Key=full, UploadId=upload_id, PartNumber=number, Body=chunk
                    )["ETag"]
                parts.append({"ETag": etag, "PartNumber": number})
                if progress:
                    progress(len(chunk))
            # Checked before completing: a source that changed mid-upload never becomes visible.
            check_sha256(key, sha256, digest.hexdigest(), where)
            self._s3.complete_multipart_upload(
                Bucket=self.bucket,
                Key=full,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
                IfNoneMatch="*",
            )
        except BaseException as exc:
            self._abort(full, upload_id)
            if isinstance(exc, ClientError) and _code(exc) in _RACE_CODES:
                self._exists_same(key, sha256, size)
                return
            if isinstance(exc, ClientError | BotoCoreError):
                raise self._error(exc, f"completing upload of {key!r}") from exc
            raise

    def _abort(self, full_key: str, upload_id: str) -> None:
        # Best effort; a bucket lifecycle rule for incomplete uploads is the backstop.
        with suppress(ClientError, BotoCoreError):
            self._s3.abort_multipart_upload(Bucket=self.bucket, Key=full_key, UploadId=upload_id)

    def open_stream(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        with self._translate(f"reading {key!r}"):
            body = self._s3.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]

        def chunks() -> Iterator[bytes]:
            try:
                with self._translate(f"reading {key!r}"):
                    yield from body.iter_chunks(chunk_size)
            finally:
                body.close()

        return chunks()

    def presigned_url(self, key: str, expires: int = 3600) -> str | None:
        with self._translate(f"presigning {key!r}"):
            url: str = self._s3.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": self._key(key)}, ExpiresIn=expires
            )
        return url

    def list_keys(self, prefix: str = "") -> list[str]:
        root = f"{self.prefix}/" if self.prefix else ""
        keys: list[str] = []
        with self._translate(f"listing {prefix!r}"):
            paginator = self._s3.get_paginator("list_objects_v2")
            pages = paginator.paginate(Bucket=self.bucket, Prefix=root + prefix)
            for page in pages:
                keys.extend(obj["Key"][len(root) :] for obj in page.get("Contents", []))
        return sorted(keys)

    def list_objects(self, prefix: str = "") -> list[StoredObject]:
        root = f"{self.prefix}/" if self.prefix else ""
        out: list[StoredObject] = []
        with self._translate(f"listing {prefix!r}"):
            pages = self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=root + prefix
            )
            for page in pages:
                out.extend(
                    StoredObject(obj["Key"][len(root) :], int(obj["Size"]), obj["LastModified"])
                    for obj in page.get("Contents", [])
                )
        return sorted(out, key=lambda o: o.key)

    def list_incomplete_uploads(self) -> list[IncompleteUpload]:
        root = f"{self.prefix}/" if self.prefix else ""
        out: list[IncompleteUpload] = []
        with self._translate("listing incomplete uploads"):
            pages = self._s3.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=root)
            for page in pages:
                out.extend(
                    IncompleteUpload(u["Key"][len(root) :], u["UploadId"], u["Initiated"])
                    for u in page.get("Uploads", [])
                )
        return out

    def abort_upload(self, upload: IncompleteUpload) -> None:
        with self._translate(f"aborting the upload of {upload.key!r}"):
            self._s3.abort_multipart_upload(
                Bucket=self.bucket, Key=self._key(upload.key), UploadId=upload.upload_id
            )

    def delete(self, key: str) -> None:
        with self._translate(f"deleting {key!r}"):
            self._s3.delete_object(Bucket=self.bucket, Key=self._key(key))


def _hash(fh: BinaryIO) -> str:
    digest = hashlib.sha256()
    while chunk := fh.read(CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def _hash_chunks(chunks: Iterator[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()
