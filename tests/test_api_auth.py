"""The role matrix: anonymous, an invalid key, reader, writer, admin x every endpoint.

Anonymous and invalid keys get 401, a role below the endpoint's gets 403 before anything is looked up
or changed (and an audit event of the refusal), and a sufficient role gets the endpoint's success
status. The namespace roles (grants, private namespaces) are covered by tests/test_org_matrix.py.
Runs on PostgreSQL + SeaweedFS, with one catalog seeded for the whole module (auth does not depend on
the backend pair).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from registry import service
from registry.service import Registry
from registry.service.admin.keys import ROLES, create_key
from tests.pg_service import truncate_all
from tests.s3_service import S3Service
from tests.test_api_common import Api, make_api, upload_files

RANK = {None: -1, "invalid": -1, **{r: i for i, r in enumerate(ROLES)}}
_names = itertools.count()


@pytest.fixture(scope="module")
def seeded(
    pg_url: str,
    s3_service: S3Service,
    tmp_path_factory: pytest.TempPathFactory,
    adapter_dirs: dict[str, Path],
) -> Iterator[Api]:
    settings = s3_service.settings(
        home=tmp_path_factory.mktemp("home"),
        database_url=pg_url,
        store_url=f"s3://{s3_service.bucket}/{uuid.uuid4().hex}",
        principal="seeder",
    )
    reg = Registry(settings)
    reg.store.ensure_ready()
    service.register_adapter(reg, adapter_dirs["lora"], "acme/math")
    made = make_api(reg)
    with made.client:
        yield made
    truncate_all(pg_url)


def _sha(api: Api) -> str:
    return service.get_version(api.reg, "acme/math@1").sha256


def _new_key(api: Api) -> str:
    name = f"victim-{next(_names)}"
    create_key(api.reg, name, "reader")
    return name


def _new_base(api: Api) -> str:
    name = f"invented-{next(_names)}"
    service.add_base_model(api.reg, name, source=name, local=False)
    return name


V = "/v1/adapters/acme/math/versions/1"
# (id, minimum role or None for open, method, path (may use the api), request kwargs, success statuses)
Endpoint = tuple[str, str | None, str, Callable[[Api], str], Callable[[Api], dict[str, Any]], set[int]]
ENDPOINTS: list[Endpoint] = [
    ("healthz", None, "GET", lambda a: "/healthz", lambda a: {}, {200}),
    ("readyz", None, "GET", lambda a: "/readyz", lambda a: {}, {200}),
    ("base-models.list", "reader", "GET", lambda a: "/v1/base-models", lambda a: {}, {200}),
    (
        "base-models.add",
        "writer",
        "POST",
        lambda a: "/v1/base-models",
        lambda a: {"json": {"name": "other-base", "source": a.reg.settings.resolved_artifact_store + "/m/o"}},
        {200, 201},
    ),
    ("base-models.show", "reader", "GET", lambda a: "/v1/base-models/tiny-llama", lambda a: {}, {200}),
    (
        "base-models.merge",
        "admin",
        "POST",
        lambda a: "/v1/base-models:merge",
        lambda a: {"json": {"base": _new_base(a), "into": "tiny-llama"}},
        {200},
    ),
    ("adapters.list", "reader", "GET", lambda a: "/v1/adapters", lambda a: {"params": {"tag": "x:y"}}, {200}),
    (
        "adapters.register",
        "writer",
        "POST",
        lambda a: "/v1/adapters",
        lambda a: {"files": upload_files(a.extra["lora"]), "data": {"name": "acme/math"}},
        {200},
    ),
    ("adapters.show", "reader", "GET", lambda a: "/v1/adapters/acme/math", lambda a: {}, {200}),
    ("versions.get", "reader", "GET", lambda a: V, lambda a: {}, {200}),
    ("versions.download", "reader", "GET", lambda a: V + "/download", lambda a: {}, {307}),
    (
        "versions.manifest",
        "reader",
        "GET",
        lambda a: V + "/download",
        lambda a: {"params": {"redirect": "false"}},
        {200},
    ),
    ("versions.lineage", "reader", "GET", lambda a: V + "/lineage", lambda a: {}, {200}),
    ("versions.serving", "reader", "GET", lambda a: V + "/serving", lambda a: {}, {200}),
    (
        "aliases.set",
        "writer",
        "PUT",
        lambda a: "/v1/adapters/acme/math/aliases/prod",
        lambda a: {"json": {"version": 1}},
        {200},
    ),
    (
        "audit",
        "reader",
        "GET",
        lambda a: "/v1/audit",
        lambda a: {"params": {"actor": "key:writer-key"}},
        {200},
    ),
    ("artifacts", "reader", "GET", lambda a: f"/v1/artifacts/{_sha(a)}", lambda a: {}, {200}),
    (
        "keys.create",
        "admin",
        "POST",
        lambda a: "/v1/keys",
        lambda a: {"json": {"name": f"made-{next(_names)}", "role": "reader"}},
        {201},
    ),
    ("keys.list", "admin", "GET", lambda a: "/v1/keys", lambda a: {}, {200}),
    ("keys.revoke", "admin", "DELETE", lambda a: f"/v1/keys/{_new_key(a)}", lambda a: {}, {204}),
    # Any principal lists the webhooks it manages (none here); tests/test_org_matrix.py covers the rest.
    ("webhooks.list", "reader", "GET", lambda a: "/v1/webhooks", lambda a: {}, {200}),
    (
        "webhooks.create",
        "admin",
        "POST",
        lambda a: "/v1/webhooks",
        lambda a: {"json": {"url": "http://10.9.9.9/hook"}},  # registry-wide: admin; then no allowed hosts
        {422},
    ),
    ("methods", "reader", "GET", lambda a: "/v1/methods", lambda a: {}, {200}),
    ("metrics", "admin", "GET", lambda a: "/metrics", lambda a: {}, {200}),
]


@pytest.mark.postgres
@pytest.mark.s3
@pytest.mark.parametrize("role", [None, "invalid", *ROLES])
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[e[0] for e in ENDPOINTS])
def test_role_matrix(
    seeded: Api, adapter_dirs: dict[str, Path], endpoint: Endpoint, role: str | None
) -> None:
    _, needed, method, path, kwargs, ok = endpoint
    seeded.extra["lora"] = adapter_dirs["lora"]
    url, options = path(seeded), kwargs(seeded)
    before = service.list_events(seeded.reg, limit=1)
    r = seeded.client.request(method, url, headers=seeded.h(role), follow_redirects=False, **options)
    if needed is None:
        assert r.status_code in ok
    elif RANK[role] < 0:
        assert r.status_code == 401, r.text
        assert r.headers["www-authenticate"] == "Bearer"
    elif RANK[role] < RANK[needed]:
        assert r.status_code == 403, r.text
        assert needed in r.json()["detail"]
    else:
        assert r.status_code in ok, r.text
    if needed is None or RANK[role] < RANK[needed]:
        # Refused requests change nothing; a refused write by a known principal is one audit event
        # saying who, what and why (an unauthenticated one is not: nobody to name).
        newest = before[0].id if before else 0
        new = [e for e in service.list_events(seeded.reg, limit=5) if e.id > newest]
        if needed is not None and RANK[role] >= 0:
            assert [(e.action, e.actor) for e in new] == [("refused", f"key:{role}-key")]
            assert needed in new[0].details["why"] and new[0].details["needs"] == needed
        else:
            assert new == []
