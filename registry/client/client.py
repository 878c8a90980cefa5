"""`Client(url, api_key)`: the REST API of a PEM Registry server as typed Python calls.

Every method is one or a few HTTP calls; server errors come back as registry.client.errors types.
Imports httpx and pydantic only (no torch, Prefect, peft or SQLAlchemy).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from pydantic import TypeAdapter

from ..base_evidence import evidence_for, folder_evidence
from ..refs import validate_name
from ..serving import ServingRefs
from ..serving import pull as pull_layout
from ..views import BaseMerged, TrainingRecord
from ..webhooks.views import DeliveryView, PingSent, WebhookCreated, WebhookView
from . import errors
from .models import (
    AdapterView,
    AliasDeleted,
    BaseModelView,
    Composition,
    DownloadManifest,
    GrantView,
    KeyCreated,
    NamespaceView,
    Registered,
    VersionView,
)
from .reads import Reads
from .reads import seg as _seg
from .reads import split_ref as _split
from .transfer import (
    CHUNK,
    Progress,
    ProgressFile,
    check_target,
    config_base_path,
    folder_files,
    form_fields,
    write_verified,
)

DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=5.0)
YAML = "application/yaml"


class Client(Reads):
    """A PEM Registry server. `url` like `http://127.0.0.1:8000`; `api_key` from `pemreg keys create`, or
    an OIDC token (a JWT) of the server's SSO issuer: either is sent as the bearer credential.

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
        create_base: bool = False,
        allow_deleted: bool = False,
        training: TrainingRecord | None = None,
    ) -> Registered:
        """Upload a PEFT adapter folder (adapter_config.json + adapter_model.safetensors, and its
        README.md, kept byte-identical), streamed. `progress(filename, total)` returns a callback
        receiving byte counts as they are sent.

        When the config's `base_model_name_or_path` names a folder on this machine, its config
        fingerprint and weights digest are sent (registry.base_evidence): the server matches the base
        by them, never by the path. `create_base`: register an unmatched hub id as a new base.
        `allow_deleted`: bytes of a deleted version bring that version back. `training`: metrics,
        params and dataset URIs recorded with the version."""
        paths = folder_files(Path(folder))
        evidence = evidence_for(config_base_path(paths["config"]), weights=base_model is None)
        handles = {
            field: ProgressFile(path, progress(path.name, path.stat().st_size) if progress else None)
            for field, path in paths.items()
        }
        try:
            files = {field: (h.name, h, "application/octet-stream") for field, h in handles.items()}
            training = training or TrainingRecord()
            data = form_fields(
                name=name,
                base_model=base_model,
                task=task,
                description=description,
                tags=[f"{k}={v}" for k, v in (tags or {}).items()],
                base_config_sha256=evidence.config_sha256 if evidence else None,
                base_weights_sha256=evidence.weights_sha256 if evidence else None,
                base_architecture=evidence.architecture if evidence else None,
                create_base="true" if create_base else None,
                allow_deleted="true" if allow_deleted else None,
                metrics=[f"{k}={v!r}" for k, v in training.metrics.items()],
                params=[f"{k}={v}" for k, v in training.params.items()],
                datasets=list(training.datasets),
            )
            response = self._request("POST", "/v1/adapters", files=files, data=data)
        finally:
            for h in handles.values():
                h.close()
        return Registered.model_validate(response.json())

    def register_from_source(
        self, source: str, name: str, *, training: TrainingRecord | None = None, **fields: Any
    ) -> Registered:
        """An `s3://bucket/prefix` folder the server can read (base_model, task, tags, description,
        create_base, allow_deleted, training)."""
        body = {"source": source, "name": name, **{k: v for k, v in fields.items() if v is not None}}
        if training is not None and not training.empty:
            body["metrics"] = [f"{k}={v!r}" for k, v in training.metrics.items()]
            body["params"] = [f"{k}={v}" for k, v in training.params.items()]
            body["datasets"] = list(training.datasets)
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
        """A maintainer of the namespace (or admin). `ref` must name one version (`ns/name@N`, `@alias`,
        `@sha256:…`): a bare name is refused, never read as `latest`. Conflict (naming them) while live
        versions descend from it."""
        name, _, selector = ref.strip().partition("@")
        validate_name(name, "ref")
        if not selector:
            raise errors.InvalidInput(
                f"ref: {ref!r} names no version; write {name}@N (delete_adapter deletes every version)",
                field="ref",
            )
        path = f"/v1/adapters/{name}/versions/{_seg(selector)}"
        return VersionView.model_validate(self._request("DELETE", path).json())

    def delete_adapter(self, name: str) -> list[VersionView]:
        """Admin: delete every version of `name` (the REST call says `all_versions=true` explicitly)."""
        validate_name(name, "name")
        data = self._request("DELETE", f"/v1/adapters/{name}", params={"all_versions": "true"}).json()
        return TypeAdapter(list[VersionView]).validate_python(data)

    def undelete(self, ref: str) -> VersionView:
        """Admin: bring a deleted version back (`ns/name@N` or `@sha256:…`) while gc has not removed its
        files; it gets the status it had before the delete."""
        name, selector = _split(ref)
        path = f"/v1/adapters/{name}/versions/{_seg(selector)}:undelete"
        return VersionView.model_validate(self._request("POST", path).json())

    # -- base models, audit, artifacts ---------------------------------------------------------------
    def add_base_model(
        self,
        name: str,
        *,
        source: str,
        revision: str = "main",
        sha256: str | None = None,
        folder: str | Path | None = None,
    ) -> tuple[BaseModelView, bool]:
        """Returns (view, created): created is False when it was already registered. `folder`: a
        local copy of the base; its config.json and weights digest are recorded, so adapters whose
        config names a folder holding this base are recognised (the server never reads `folder`)."""
        body: dict[str, Any] = {"name": name, "source": source, "revision": revision, "sha256": sha256}
        if folder is not None:
            found = folder_evidence(Path(folder).expanduser())
            if found.config is None:
                raise errors.InvalidInput(f"folder: {folder} has no readable config.json", field="folder")
            body.update(config=found.config, sha256=sha256 or found.weights_sha256)
        response = self._request("POST", "/v1/base-models", json={k: v for k, v in body.items() if v})
        return BaseModelView.model_validate(response.json()), response.status_code == 201

    def merge_base_models(self, base: str, into: str) -> BaseMerged:
        """Admin: move every adapter of `base` to `into` and remove `base` (a catalog repair)."""
        body = {"base": base, "into": into}
        return BaseMerged.model_validate(self._request("POST", "/v1/base-models:merge", json=body).json())

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

    # -- serving -------------------------------------------------------------------------------------
    def serving(self, ref: str, *, pull_dir: str | None = None) -> ServingRefs:
        """vLLM / LoRAX references of a version: file URLs, the base's source, the pull folder."""
        name, selector = _split(ref)
        path = f"/v1/adapters/{name}/versions/{_seg(selector)}/serving"
        return self._get(ServingRefs, path, dir=pull_dir)

    def pull(self, ref: str, dest: str | Path, *, link: str | None = None) -> Path:
        """Lay the version `ref` names out under `dest` for vLLM's filesystem resolver and LoRAX
        (registry.serving): `dest/<ns>/<name>@<sha8>/` with the config's base path set to the registered
        base's source, and `dest/<ns>/<name>@<link>` pointing at it (default: the ref's alias or number)."""
        dest = Path(dest).expanduser()
        refs = self.serving(ref, pull_dir=str(dest.resolve()))
        _, selector = _split(ref)
        return pull_layout(
            refs, dest, lambda pinned, into: self.download(pinned, into, force=True), link=link or selector
        )

    # -- webhooks (a namespace's maintainers; admins) ------------------------------------------------
    def list_webhooks(self) -> list[WebhookView]:
        return self._list(WebhookView, "/v1/webhooks")

    def create_webhook(
        self,
        url: str,
        *,
        events: list[str] | None = None,
        namespace: str | None = None,
        alias_pattern: str | None = None,
        description: str | None = None,
    ) -> WebhookCreated:
        """The answer's `secret` (whsec_...) is shown once."""
        body = {"url": url, "events": events or [], "namespace": namespace, "alias_pattern": alias_pattern}
        if description is not None:
            body["description"] = description
        return WebhookCreated.model_validate(self._request("POST", "/v1/webhooks", json=body).json())

    def get_webhook(self, webhook_id: str) -> WebhookView:
        return self._get(WebhookView, f"/v1/webhooks/{_seg(webhook_id)}")

    def update_webhook(self, webhook_id: str, **fields: Any) -> WebhookView:
        """Fields given are replaced (url, events, namespace, alias_pattern, description, active)."""
        path = f"/v1/webhooks/{_seg(webhook_id)}"
        return WebhookView.model_validate(self._request("PATCH", path, json=fields).json())

    def delete_webhook(self, webhook_id: str) -> None:
        self._request("DELETE", f"/v1/webhooks/{_seg(webhook_id)}")

    def rotate_webhook_secret(self, webhook_id: str) -> WebhookCreated:
        path = f"/v1/webhooks/{_seg(webhook_id)}:rotate-secret"
        return WebhookCreated.model_validate(self._request("POST", path).json())

    def ping_webhook(self, webhook_id: str) -> PingSent:
        return PingSent.model_validate(self._request("POST", f"/v1/webhooks/{_seg(webhook_id)}:ping").json())

    def webhook_deliveries(
        self, webhook_id: str, *, status: str | None = None, limit: int = 50
    ) -> list[DeliveryView]:
        path = f"/v1/webhooks/{_seg(webhook_id)}/deliveries"
        return self._list(DeliveryView, path, status=status, limit=limit)

    def webhook_delivery(self, webhook_id: str, event_id: str) -> DeliveryView:
        return self._get(DeliveryView, f"/v1/webhooks/{_seg(webhook_id)}/deliveries/{_seg(event_id)}")

    def redeliver(self, webhook_id: str, event_id: str) -> DeliveryView:
        path = f"/v1/webhooks/{_seg(webhook_id)}/deliveries/{_seg(event_id)}:redeliver"
        return DeliveryView.model_validate(self._request("POST", path).json())

    # -- namespaces, grants (their reads are reads.Reads') ---------------------------------------------
    def create_namespace(
        self,
        namespace: str,
        *,
        visibility: str | None = None,
        protected_aliases: list[str] | None = None,
        description: str | None = None,
    ) -> NamespaceView:
        """Admin. `visibility` internal | private (default: the server's PEMREG_DEFAULT_VISIBILITY)."""
        body: dict[str, Any] = {"name": namespace, "protected_aliases": protected_aliases or []}
        if visibility is not None:
            body["visibility"] = visibility
        if description is not None:
            body["description"] = description
        return NamespaceView.model_validate(self._request("POST", "/v1/namespaces", json=body).json())

    def update_namespace(
        self,
        namespace: str,
        *,
        visibility: str | None = None,
        protected_aliases: list[str] | None = None,
        description: str | None = None,
    ) -> NamespaceView:
        """A maintainer: each argument given replaces the old value."""
        body = {
            k: v
            for k, v in {
                "visibility": visibility,
                "protected_aliases": protected_aliases,
                "description": description,
            }.items()
            if v is not None
        }
        path = f"/v1/namespaces/{_seg(namespace)}"
        return NamespaceView.model_validate(self._request("PATCH", path, json=body).json())

    def grant(self, namespace: str, subject: str, role: str) -> GrantView:
        """A maintainer: `subject` (key:NAME, user:SUB, group:NAME) gets `role` (reader|writer|maintainer)."""
        path = f"/v1/namespaces/{_seg(namespace)}/grants/{_seg(subject)}"
        return GrantView.model_validate(self._request("PUT", path, json={"role": role}).json())

    def revoke(self, namespace: str, subject: str) -> None:
        self._request("DELETE", f"/v1/namespaces/{_seg(namespace)}/grants/{_seg(subject)}")

    # -- keys (admin) --------------------------------------------------------------------------------
    def create_key(self, name: str, role: str) -> KeyCreated:
        return KeyCreated.model_validate(
            self._request("POST", "/v1/keys", json={"name": name, "role": role}).json()
        )

    def revoke_key(self, name: str) -> None:
        self._request("DELETE", f"/v1/keys/{_seg(name)}")
