"""Artifact stores chosen by URL scheme (as MLflow's artifact repositories): file:// and s3://."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from ..errors import StoreError
from .base import ArtifactNotFound, ArtifactStore, Progress, adapter_prefix
from .file import FileStore

__all__ = ["ArtifactNotFound", "ArtifactStore", "FileStore", "Progress", "adapter_prefix", "open_store"]


def open_store(
    url: str,
    *,
    s3_endpoint_url: str | None = None,
    s3_region: str | None = None,
    aws_access_key_id: str | None = None,
    aws_secret_access_key: str | None = None,
) -> ArtifactStore:
    """`file:///abs/path` (a bare absolute or ~ path also works) or `s3://bucket[/prefix]`.
    S3 credentials left None come from the standard AWS chain (env, ~/.aws, instance role)."""
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        from .s3 import S3Store  # boto3 import costs ~0.15 s: only pay it when S3 is used

        return S3Store(
            url,
            endpoint_url=s3_endpoint_url,
            region=s3_region,
            access_key=aws_access_key_id,
            secret_key=aws_secret_access_key,
        )
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise StoreError(f"invalid file store URL {url!r}: use file:///absolute/path")
        return FileStore(unquote(parsed.path))
    if not parsed.scheme and url.startswith(("/", "~")):
        return FileStore(Path(url).expanduser())
    raise StoreError(f"unsupported artifact store URL {url!r}: use file:///path or s3://bucket/prefix")
