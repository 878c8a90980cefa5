"""Downloads: GET .../versions/{v}/download.

- default: the bytes of one file (`?file=`, default adapter_model.safetensors). An S3 store answers 307
  to a presigned URL (the bytes never pass through the API; `curl -L` follows); a file store streams
  them. Either way the `X-Content-SHA256` / `ETag` headers carry the recorded digest to check.
- `?redirect=false`: JSON manifest of every file of the version with its sha256, size and a URL
  (presigned on S3; on a file store this endpoint's own streaming URL, which needs the same key).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from api.deps import Reader
from api.errors import ERROR_RESPONSES
from api.schemas import DownloadFile, DownloadManifest, inline_schema
from registry import service
from registry.errors import NotFound
from registry.service.catalog.downloads import version_prefix
from registry.service.catalog.serving import Link, file_urls
from registry.views import VersionView

from .common import VERSION, Name, Namespace, Selector, version_ref

router = APIRouter(prefix="/v1/adapters", tags=["adapters"], responses=ERROR_RESPONSES)
WEIGHTS = "adapter_model.safetensors"

DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the file's bytes, or with redirect=false the JSON manifest",
        "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {"schema": inline_schema(DownloadManifest)},
        },
    },
    307: {"description": "S3 store: redirect to a presigned URL of the file"},
}


def route_link(request: Request) -> Link:
    """This API's streaming URL of a file, pinned to the version number (immutable); needs a key."""

    def link(version: VersionView, filename: str) -> str:
        ns, name = version.name.split("/", 1)
        url = request.url_for("download_version", ns=ns, name=name, v=str(version.version))
        return str(url.include_query_params(file=filename))

    return link


def _manifest(request: Request, caller_reg: Any, version: VersionView, expires: int) -> DownloadManifest:
    urls, presigned = file_urls(caller_reg, version, expires, route_link(request))
    files = [DownloadFile(file=f.file, sha256=f.sha256, size=f.size, url=f.url or "") for f in urls]
    return DownloadManifest(
        name=version.name,
        version=version.version,
        sha256=version.sha256,
        expires_in=expires if presigned else None,
        files=files,
    )


@router.get(VERSION + "/download", name="download_version", response_model=None, responses=DOC)
def download_version(
    caller: Reader,
    request: Request,
    ns: Namespace,
    name: Name,
    v: Selector,
    file: Annotated[str, Query(description="which file of the version")] = WEIGHTS,
    redirect: Annotated[bool, Query(description="false: JSON manifest with per-file URLs")] = True,
    expires: Annotated[int, Query(ge=60, le=7 * 24 * 3600, description="presigned URL lifetime, s")] = 3600,
) -> Response:
    version = service.get_version(caller.reg, version_ref(ns, name, v))
    if not redirect:
        return Response(
            _manifest(request, caller.reg, version, expires).model_dump_json(), media_type="application/json"
        )
    entry = version.files.get(file)
    if entry is None:
        raise NotFound(
            f"file: {file!r} is not a file of {version.name}@{version.version} "
            f"(files: {', '.join(sorted(version.files))})"
        )
    key = f"{version_prefix(version)}/{file}"
    headers = {"X-Content-SHA256": entry["sha256"], "ETag": f'"{entry["sha256"]}"'}
    url = caller.reg.store.presigned_url(key, expires)
    if url is not None:
        return RedirectResponse(url, status_code=307, headers=headers)
    stream = caller.reg.store.open_stream(key)  # opens now: a missing object fails before streaming
    headers |= {"Content-Length": str(entry["size"]), "Content-Disposition": f'attachment; filename="{file}"'}
    return StreamingResponse(stream, media_type="application/octet-stream", headers=headers)
