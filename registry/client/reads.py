"""The read calls of the REST API, once, over any JSON transport; and `ReadClient`, the same calls over
the standard library's http.client.

`Client` (client.py, httpx: uploads, streamed downloads, a connection pool) inherits these methods;
`ReadClient` is what a short-lived process that only reads uses (the `pemreg` catalog commands in
remote mode): importing httpx costs ~0.1-0.16 s, more than the request itself on loopback.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import quote, urlencode, urlsplit

from pydantic import BaseModel, TypeAdapter

from ..refs import parse_ref, validate_name
from ..views import BaseModelDetail
from . import errors
from .models import (
    AdapterView,
    ArtifactMatch,
    AuditEventView,
    BaseModelView,
    Composition,
    GrantView,
    KeyView,
    LineageGraph,
    NamespaceView,
    Page,
    VersionView,
    WhoAmI,
)

M = TypeVar("M", bound=BaseModel)
CONNECT_TIMEOUT, READ_TIMEOUT = 5.0, 60.0


def split_ref(ref: str) -> tuple[str, str]:
    """`ns/name[@selector]` -> (`ns/name`, selector or 'latest'), checked by the grammar the server
    applies (registry/refs.py), so a bad selector is the same one-line error without a round trip."""
    parsed = parse_ref(ref, "ref")
    return parsed.full_name, parsed.selector or "latest"


def seg(text: str) -> str:
    return quote(text, safe=":")


def query_params(params: dict[str, Any]) -> dict[str, Any]:
    """Query parameters without the unset ones; booleans as the server spells them."""
    out = {}
    for key, value in params.items():
        if value is None or value == []:
            continue
        out[key] = json.dumps(value) if isinstance(value, bool) else value
    return out


class Reads:
    """Every GET of the API as a typed call; subclasses provide `_get_json(path, params)`."""

    url: str

    def _get_json(self, path: str, params: dict[str, Any]) -> Any:
        raise NotImplementedError

    def _get(self, model: type[M], path: str, **params: Any) -> M:
        return model.model_validate(self._get_json(path, query_params(params)))

    def _list(self, model: type[M], path: str, **params: Any) -> list[M]:
        data = self._get_json(path, query_params(params))
        return TypeAdapter(list[model]).validate_python(data)  # type: ignore[valid-type]

    # -- health ------------------------------------------------------------------------------------
    def ready(self) -> dict[str, Any]:
        """GET /readyz: the catalog and store checks (raises ServerUnavailable when not ready)."""
        return dict(self._get_json("/readyz", {}))

    # -- adapters ----------------------------------------------------------------------------------
    def list_adapters(
        self,
        *,
        base_model: str | None = None,
        pem_type: str | None = None,
        task: str | None = None,
        tags: dict[str, str] | None = None,
        query: str | None = None,
        include_archived: bool = False,
        limit: int = 50,
        page_token: str | None = None,
        metrics: list[str] | None = None,
        params: dict[str, str] | None = None,
        datasets: list[str] | None = None,
    ) -> Page[AdapterView]:
        """One page; pass its `next_page_token` back for the next (or use iter_adapters). `metrics`
        (`acc>=0.8`), `params` and `datasets` match a version's training record."""
        wanted: dict[str, Any] = {
            "base_model": base_model,
            "pem_type": pem_type,
            "task": task,
            "tag": [f"{k}:{v}" for k, v in (tags or {}).items()],
            "q": query,
            "include_archived": include_archived or None,
            "limit": limit,
            "page_token": page_token,
            "metric": list(metrics or []),
            "param": [f"{k}:{v}" for k, v in (params or {}).items()],
            "dataset": list(datasets or []),
        }
        return self._get(Page[AdapterView], "/v1/adapters", **wanted)

    def iter_adapters(self, *, page_size: int = 100, **filters: Any) -> Iterator[AdapterView]:
        """Every adapter matching the filters, fetching pages as the iteration reaches them."""
        token = None
        while True:
            page = self.list_adapters(limit=page_size, page_token=token, **filters)
            yield from page.items
            if not page.next_page_token:
                return
            token = page.next_page_token

    def show(self, name: str, *, include_archived: bool = False) -> AdapterView:
        validate_name(name, "name")
        return self._get(AdapterView, f"/v1/adapters/{name}", include_archived=include_archived or None)

    def get_version(self, ref: str) -> VersionView:
        name, selector = split_ref(ref)
        return self._get(VersionView, f"/v1/adapters/{name}/versions/{seg(selector)}")

    def lineage(self, ref: str, *, direction: str = "up", depth: int = 10) -> LineageGraph:
        name, selector = split_ref(ref)
        path = f"/v1/adapters/{name}/versions/{seg(selector)}/lineage"
        return self._get(LineageGraph, path, direction=direction, depth=depth)

    # -- base models, audit, artifacts ---------------------------------------------------------------
    def list_base_models(self) -> list[BaseModelView]:
        return self._list(BaseModelView, "/v1/base-models")

    def show_base_model(self, label: str) -> BaseModelDetail:
        """One base model (`NAME` or `NAME@REVISION`), with its adapters."""
        return self._get(BaseModelDetail, f"/v1/base-models/{quote(label, safe='/@')}")

    def audit(
        self, *, subject: str | None = None, actor: str | None = None, limit: int = 100
    ) -> list[AuditEventView]:
        """Audit events, newest first."""
        return self._list(AuditEventView, "/v1/audit", subject=subject, actor=actor, limit=limit)

    def artifact(self, sha256: str) -> list[ArtifactMatch]:
        """Which registered objects hold a file with this digest, with their ancestry."""
        return self._list(ArtifactMatch, f"/v1/artifacts/{sha256.removeprefix('sha256:')}")

    # -- compositions --------------------------------------------------------------------------------
    def get_composition(self, composition_id: str) -> Composition:
        return self._get(Composition, f"/v1/compositions/{seg(composition_id)}")

    def list_compositions(self, *, status: str | None = None, limit: int = 50) -> list[Composition]:
        data = self._get_json("/v1/compositions", query_params({"status": status, "limit": limit}))
        items = data.get("items", []) if isinstance(data, dict) else data  # a paged answer, when it comes
        return [Composition.model_validate(item) for item in items]

    def wait(
        self,
        composition_id: str,
        *,
        timeout: float = 600.0,
        poll: float = 0.5,
        on_update: Callable[[Composition], None] | None = None,
    ) -> Composition:
        """Poll until the run succeeded, failed or was rejected; ServerUnavailable after `timeout` s."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            view = self.get_composition(composition_id)
            if on_update and view.status != last:
                on_update(view)
                last = view.status
            if view.done:
                return view
            if time.monotonic() > deadline:
                raise errors.ServerUnavailable(
                    f"composition {composition_id}: still {view.status} after {timeout:g} s"
                )
            time.sleep(poll)

    # -- namespaces, grants, whoami -------------------------------------------------------------------
    def whoami(self) -> WhoAmI:
        """Who the server takes this client's key or token for: principal, groups, role, grants."""
        return self._get(WhoAmI, "/v1/whoami")

    def list_namespaces(self) -> list[NamespaceView]:
        """The namespaces this principal may read, each with its role there."""
        return self._list(NamespaceView, "/v1/namespaces")

    def get_namespace(self, namespace: str) -> NamespaceView:
        return self._get(NamespaceView, f"/v1/namespaces/{seg(namespace)}")

    def list_grants(self, namespace: str) -> list[GrantView]:
        return self._list(GrantView, f"/v1/namespaces/{seg(namespace)}/grants")

    # -- keys (admin) --------------------------------------------------------------------------------
    def list_keys(self, *, include_revoked: bool = True) -> list[KeyView]:
        return self._list(KeyView, "/v1/keys", include_revoked=include_revoked)


class ReadClient(Reads):
    """The read calls over http.client: one connection per call, no pool, nothing else imported."""

    def __init__(
        self, url: str, api_key: str | None = None, *, connect_timeout: float = CONNECT_TIMEOUT
    ) -> None:
        self.url = url.rstrip("/")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise errors.InvalidInput(f"{url}: not an http(s) URL", field="url")
        self._https = parts.scheme == "https"
        self._host, self._port, self._prefix = parts.hostname, parts.port, parts.path
        self._headers = {"Accept": "application/json", "User-Agent": "pemreg"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._connect_timeout = connect_timeout

    def _get_json(self, path: str, params: dict[str, Any]) -> Any:
        import http.client

        target = self._prefix + path + (f"?{urlencode(params, doseq=True)}" if params else "")
        conn: http.client.HTTPConnection
        if self._https:
            conn = http.client.HTTPSConnection(self._host, self._port, timeout=self._connect_timeout)
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self._connect_timeout)
        try:
            conn.connect()
            if conn.sock is not None:
                conn.sock.settimeout(READ_TIMEOUT)
            conn.request("GET", target, headers=self._headers)
            response = conn.getresponse()
            body = response.read()
        except TimeoutError as exc:
            raise errors.ServerUnavailable(f"{self.url}: no answer in time ({type(exc).__name__})") from None
        except (OSError, http.client.HTTPException) as exc:
            raise errors.ServerUnavailable(f"{self.url}: cannot reach the server ({exc})") from None
        finally:
            conn.close()
        if response.status >= 400:
            try:
                data: Any = json.loads(body)
            except ValueError:
                data = body.decode("utf-8", "replace")
            raise errors.from_response(response.status, data, response.getheader("X-Request-ID"))
        return json.loads(body)
