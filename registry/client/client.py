"""`Client(url, api_key)`: the REST API of a PEM Registry server as typed Python calls.

Every method is one or a few HTTP calls; server errors come back as registry.client.errors types.
Imports httpx and pydantic only (no torch, Prefect, peft or SQLAlchemy).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from ..refs import validate_name
from . import errors
from .models import (
    AdapterView,
    AliasDeleted,
    BaseModelView,
    Composition,
    DownloadManifest,
    KeyCreated,
    Registered,
    VersionView,
)
from .reads import Reads
from .reads import seg as _seg
from .reads import split_ref as _split
from .transfer import CHUNK, Progress, ProgressFile, check_target, folder_files, form_fields, write_verified

DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=5.0)
YAML = "application/yaml"


class Client(Reads):
    """A PEM Registry server. `url` like `http://127.0.0.1:8000`; `api_key` from `pemreg keys create`.

    Use as a context manager, or call close(). Thread-safe for concurrent calls (one httpx pool). The
    read calls (list_adapters, show, lineage, ...) are reads.Reads'."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, transport=transport)
        # Presigned S3 URLs carry their own signature: no API key goes to the store.
        self._plain = httpx.Client(timeout=timeout, follow_redirects=True)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()
        self._plain.close()

    # -- transport ---------------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kw)
        except httpx.TimeoutException as exc:
            raise errors.ServerUnavailable(f"{self.url}: no answer in time ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise errors.ServerUnavailable(f"{self.url}: cannot reach the server ({exc})") from None
        if response.status_code >= 400:
            try:
                body: Any = response.json()
            except ValueError:
                body = response.text
            raise errors.from_response(response.status_code, body, response.headers.get("X-Request-ID"))
        return response

    def _get_json(self, path: str, params: dict[str, Any]) -> Any:
        return self._request("GET", path, params=params).json()

    # -- health ------------------------------------------------------------------------------------
    # -- adapters ----------------------------------------------------------------------------------
    def register(
        self,
        folder: str | Path,
        name: str,
        *,
        base_model: str | None = None,
        task: str | None = None,
        tags: dict[str, str] | None = None,
        description: str | None = None,
        progress: Progress | None = None,
    ) -> Registered:
        """Upload a PEFT adapter folder (adapter_config.json + adapter_model.safetensors), streamed.
        `progress(filename, total)` returns a callback receiving byte counts as they are sent."""
        paths = folder_files(Path(folder))
        handles = {
            field: ProgressFile(path, progress(path.name, path.stat().st_size) if progress else None)
            for field, path in paths.items()
        }
        try:
            files = {field: (h.name, h, "application/octet-stream") for field, h in handles.items()}
            data = form_fields(
                name=name,
                base_model=base_model,
                task=task,
                description=description,
                tags=[f"{k}={v}" for k, v in (tags or {}).items()],
            )
            response = self._request("POST", "/v1/adapters", files=files, data=data)
        finally:
            for h in handles.values():
                h.close()
        return Registered.model_validate(response.json())

    def register_from_source(self, source: str, name: str, **fields: Any) -> Registered:
        """An `s3://bucket/prefix` folder the server can read (base_model, task, tags, description)."""
        body = {"source": source, "name": name, **{k: v for k, v in fields.items() if v is not None}}
        return Registered.model_validate(self._request("POST", "/v1/adapters", json=body).json())

    def download(
        self, ref: str, dest: str | Path, *, force: bool = False, progress: Progress | None = None
    ) -> tuple[VersionView, list[Path]]:
        """Every file of a version into `dest` (new or empty unless force), each checked against its
        sha256 before it is renamed into place. S3 servers hand out presigned URLs (the bytes never pass
        through the API); a file-store server streams them."""
        dest = Path(dest).expanduser()
        check_target(dest, force)
        name, selector = _split(ref)
        version = self.get_version(ref)
        manifest = self._get(
            DownloadManifest,
            f"/v1/adapters/{name}/versions/{version.version}/download",
            redirect="false",
        )
        dest.mkdir(parents=True, exist_ok=True)
        written = []
        for item in manifest.files:
            target = dest / Path(item.file).name
            on_bytes = progress(item.file, item.size) if progress else None
            ours = item.url.startswith(self.url)
            client = self._http if ours else self._plain
            try:
                with client.stream("GET", item.url) as response:
                    if response.status_code >= 400:
                        response.read()
                        body = response.json() if ours else response.text
                        raise errors.from_response(response.status_code, body)
                    write_verified(response.iter_bytes(CHUNK), target, item.sha256, on_bytes)
            except httpx.TransportError as exc:
                raise errors.ServerUnavailable(f"{item.file}: download failed ({exc})") from None
            written.append(target)
        return version, written

    def set_alias(self, ref: str, alias: str) -> VersionView:
        """Point `alias` at the version `ref` names (`ns/name@N`; an alias or digest is resolved first)."""
        name, selector = _split(ref)
        number = int(selector) if selector.isdigit() else self.get_version(ref).version
        path = f"/v1/adapters/{name}/aliases/{_seg(alias)}"
        return VersionView.model_validate(self._request("PUT", path, json={"version": number}).json())

    def delete_alias(self, name: str, alias: str) -> AliasDeleted:
        validate_name(name, "name")
        path = f"/v1/adapters/{name}/aliases/{_seg(alias)}"
        return AliasDeleted.model_validate(self._request("DELETE", path).json())

    def update_adapter(
        self, name: str, *, tags: dict[str, str | None] | None = None, description: str | None = None
    ) -> AdapterView:
        """Set tags (None as a value removes that tag) and/or replace the description."""
        validate_name(name, "name")
        body = {k: v for k, v in {"tags": tags, "description": description}.items() if v is not None}
        return AdapterView.model_validate(self._request("PATCH", f"/v1/adapters/{name}", json=body).json())

    def _version_action(self, ref: str, action: str) -> VersionView:
        name, selector = _split(ref)
        path = f"/v1/adapters/{name}/versions/{_seg(selector)}:{action}"
        return VersionView.model_validate(self._request("POST", path).json())

    def deprecate(self, ref: str) -> VersionView:
        return self._version_action(ref, "deprecate")

    def archive(self, ref: str) -> VersionView:
        return self._version_action(ref, "archive")

    def restore(self, ref: str) -> VersionView:
        return self._version_action(ref, "restore")

    def delete_version(self, ref: str) -> VersionView:
        """Admin. Conflict (naming them) while live versions descend from it."""
        name, selector = _split(ref)
        path = f"/v1/adapters/{name}/versions/{_seg(selector)}"
        return VersionView.model_validate(self._request("DELETE", path).json())

    # -- base models, audit, artifacts ---------------------------------------------------------------
    def add_base_model(
        self, name: str, *, source: str, revision: str = "main", sha256: str | None = None
    ) -> tuple[BaseModelView, bool]:
        """Returns (view, created): created is False when it was already registered."""
        body = {"name": name, "source": source, "revision": revision, "sha256": sha256}
        response = self._request("POST", "/v1/base-models", json={k: v for k, v in body.items() if v})
        return BaseModelView.model_validate(response.json()), response.status_code == 201

    # -- compositions --------------------------------------------------------------------------------
    def _spec_request(self, method: str, path: str, spec: str | Path | dict[str, Any]) -> httpx.Response:
        if isinstance(spec, dict):
            return self._request(method, path, json=spec)
        text = Path(spec).read_text() if isinstance(spec, Path) else spec
        return self._request(method, path, content=text.encode(), headers={"Content-Type": YAML})

    def compose(self, spec: str | Path | dict[str, Any]) -> Composition:
        """Start a composition (a dict, YAML text or a spec file); answers at once (status pending)."""
        return Composition.model_validate(self._spec_request("POST", "/v1/compositions", spec).json())

    def validate(self, spec: str | Path | dict[str, Any]) -> dict[str, Any]:
        """Dry run: resolved inputs, compatibility checks and the interference report; composes nothing."""
        return dict(self._spec_request("POST", "/v1/compositions:validate", spec).json())

    # -- keys (admin) --------------------------------------------------------------------------------
    def create_key(self, name: str, role: str) -> KeyCreated:
        return KeyCreated.model_validate(
            self._request("POST", "/v1/keys", json={"name": name, "role": role}).json()
        )

    def revoke_key(self, name: str) -> None:
        self._request("DELETE", f"/v1/keys/{_seg(name)}")
